"""Results queued for verified re-execution, and the leaderboard of verified scores only.

What a caller sees follows :mod:`aarlab.server.private`: an agent token reads released dev scores and
no sealed figure until an overseer reveals the task's private board (``POST /api/v1/tasks/{task}/reveal``).
Results have a budget per agent and task and a per-minute rate limit, like dev submissions.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from aarlab.api.schemas import (
    SEVERITY_ORDER,
    TASK_PATTERN,
    USES_GROUP_STRUCTURE,
    LeaderboardRow,
    ResultIn,
    ResultOut,
    RevealOut,
    TransferOut,
)
from aarlab.server.deps import DB, Caller, Overseer, State
from aarlab.server.models import (
    Agent,
    Result,
    Reveal,
    ReviewFlag,
    Snapshot,
    TransferVerdict,
    VerifiedScore,
)
from aarlab.server.private import sees_private
from aarlab.server.state import ServerState

router = APIRouter(prefix="/api/v1", tags=["results"])
ResultId = Annotated[int, Path(ge=1, le=2**31 - 1)]


_SEED = re.compile(r"\bseed \d+")


def _out(r: Result, released_dev: float | None = None, *, private: bool = False) -> ResultOut:
    """A result as a caller sees it; ``private`` (an agent): the verification seeds drawn for it are
    masked in the reason (they are the overseers' to see)."""
    reason = r.reason
    if private and reason:
        reason = _SEED.sub("a verification seed", reason)
    return ResultOut(
        id=r.id,
        task=r.task,
        snapshot_sha=r.snapshot_sha,
        status=r.status,
        created_at=r.created_at,
        reason=reason,
        released_dev=released_dev,
    )


def _check_result_quota(state: ServerState, db: Session, caller: Agent, task: str) -> None:
    """Results per agent: at most ``result_rate_per_minute`` a minute (429 with Retry-After) and
    ``result_budget`` per task (403). Each verified result is a scored query, so both are bounded."""
    cfg = state.settings
    now = datetime.now(UTC)
    window = now - timedelta(seconds=60)
    recent = list(
        db.scalars(
            select(Result.created_at)
            .where(Result.agent_id == caller.id, Result.created_at > window)
            .order_by(Result.created_at)
        )
    )
    if len(recent) >= cfg.result_rate_per_minute:
        oldest = recent[0] if recent[0].tzinfo else recent[0].replace(tzinfo=UTC)
        wait = max(1, math.ceil((oldest - window).total_seconds()))
        raise HTTPException(
            429,
            f"rate limit: {cfg.result_rate_per_minute} results per minute; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    used = (
        db.scalar(
            select(func.count()).select_from(Result).where(Result.agent_id == caller.id, Result.task == task)
        )
        or 0
    )
    if used >= cfg.result_budget:
        raise HTTPException(
            403,
            f"result budget used up ({cfg.result_budget} results on {task!r}); "
            "ask an overseer to raise it (AARLAB_SERVER_RESULT_BUDGET)",
        )


@router.post("/results", status_code=201, responses={429: {"description": "rate limited"}})
def submit_result(body: ResultIn, state: State, db: DB, caller: Caller) -> ResultOut:
    """Queue a method (snapshot + config) for verified re-execution; claimed numbers are never ranked.
    Budgeted per agent and task, and rate limited per minute."""
    if body.task not in state.task_names():
        raise HTTPException(404, f"unknown task {body.task!r}; available: {', '.join(state.task_names())}")
    if db.get(Snapshot, body.snapshot_sha) is None:
        raise HTTPException(
            422, f"no snapshot {body.snapshot_sha}; upload the method folder with PUT /api/v1/snapshots first"
        )
    if body.parent_id is not None:
        parent = db.get(Result, body.parent_id)
        if parent is None or parent.task != body.task:
            raise HTTPException(
                422,
                f"parent_id {body.parent_id} is not a result of task {body.task!r}; give the id of the "
                "result this method started from (GET /api/v1/leaderboard lists them), or leave it out",
            )
    with state.agent_lock(caller.id):
        _check_result_quota(state, db, caller, body.task)
        r = _new_result(body, caller)
        db.add(r)
        db.flush()
        db.commit()
    return _out(r)


def _new_result(body: ResultIn, caller: Agent) -> Result:
    return Result(
        agent_id=caller.id,
        parent_id=body.parent_id,
        task=body.task,
        snapshot_sha=body.snapshot_sha,
        config=body.config,
        claimed=body.claimed,
        status="queued",
        created_at=datetime.now(UTC),
    )


@router.get("/results")
def my_results(db: DB, caller: Caller) -> list[ResultOut]:
    """Your own results, their status and the dev score the result Ladder released for each (if any)."""
    rows = db.execute(
        select(Result, VerifiedScore.released_dev)
        .outerjoin(VerifiedScore, VerifiedScore.result_id == Result.id)
        .where(Result.agent_id == caller.id)
        .order_by(Result.id)
    ).tuples()
    return [_out(r, released, private=caller.role != "overseer") for r, released in rows]


def _rank(v: VerifiedScore) -> float | None:
    """The PGR a row is ranked by: against the structured ceiling when the task has groups."""
    return v.pgr_structured if v.ceiling_structured_acc is not None else v.pgr


@router.get("/leaderboard")
def leaderboard(
    db: DB, _caller: Caller, task: Annotated[str, Query(pattern=TASK_PATTERN)]
) -> list[LeaderboardRow]:
    """Verified rows of results that are not disqualified and carry no open critical flag (those wait
    for review, unranked: ``GET /api/v1/leaderboard/pending``), with the number of open flags (on the
    result or its agent's dev log for the task) and the highest open severity. Claimed numbers never
    appear. Overseers (and everyone once the task is revealed) get every figure, ranked by the PGR that
    cannot exceed 1 through decoding alone, then sealed accuracy; agents get released dev scores only."""
    return board_rows(db, _caller, task)


@router.get("/leaderboard/pending")
def pending_review(
    db: DB, _overseer: Overseer, task: Annotated[str, Query(pattern=TASK_PATTERN)]
) -> list[LeaderboardRow]:
    """Verified results held back from the leaderboard by an open critical flag, in leaderboard order
    (overseers only): they are ranked once the flag is dismissed and leave if the result is
    disqualified."""
    ranked = {r.result_id for r in board_rows(db, _overseer, task)}
    return [r for r in board_rows(db, _overseer, task, pending=True) if r.result_id not in ranked]


def board_rows(db: Session, _caller: Agent, task: str, *, pending: bool = False) -> list[LeaderboardRow]:
    """The leaderboard's rows as ``_caller`` may see them; with ``pending`` also the rows of results with
    an open critical flag (for overseer views that list them apart).

    Verified rows of results that are not disqualified and carry no open critical flag (those wait
    for review, unranked), with the number of open flags (on the result or its agent's dev log for the
    task) and the highest open severity. Claimed numbers never appear.

    Overseers (and everyone once the task is revealed) get every figure, ranked by the PGR that cannot
    exceed 1 through decoding alone (``pgr_rank``), then sealed accuracy. Agents get released dev
    scores only, ranked by them (a sealed ordering would leak sealed information)."""
    full = sees_private(_caller, db, task)
    rows = list(
        db.execute(
            select(VerifiedScore, Agent.name, Result)
            .join(Result, Result.id == VerifiedScore.result_id)
            .join(Agent, Agent.id == Result.agent_id)
            .where(VerifiedScore.task == task, Result.status == "verified")
            .order_by(VerifiedScore.id)
        ).tuples()
    )
    if full:
        rows.sort(key=lambda t: (_rank(t[0]) is None, -(_rank(t[0]) or 0.0), -(t[0].sealed_acc or 0.0)))
    else:
        rows.sort(key=lambda t: (t[0].released_dev is None, -(t[0].released_dev or 0.0), t[0].id))
    result_ids = [v.result_id for v, _, _ in rows]
    structure = set(
        db.scalars(
            select(ReviewFlag.result_id).where(
                ReviewFlag.result_id.in_(result_ids), ReviewFlag.kind == USES_GROUP_STRUCTURE
            )
        )
    )
    agent_ids = {r.agent_id for _, _, r in rows}
    verdicts = latest_verdicts(db, result_ids)
    by_result: dict[int, list[str]] = {}
    by_agent: dict[int, list[str]] = {}
    if rows:
        flags = db.execute(
            select(ReviewFlag.result_id, ReviewFlag.agent_id, ReviewFlag.severity).where(
                ReviewFlag.status == "open",
                ReviewFlag.task == task,
                or_(
                    ReviewFlag.result_id.in_(result_ids),
                    (ReviewFlag.result_id.is_(None) & ReviewFlag.agent_id.in_(agent_ids)),
                ),
            )
        ).tuples()
        for rid, aid, sev in flags:
            if rid is None:
                by_agent.setdefault(aid, []).append(sev)
            else:
                by_result.setdefault(rid, []).append(sev)
    out = []
    for v, name, res in rows:
        if "critical" in by_result.get(v.result_id, []) and not pending:
            continue  # pending review: never ranked until an overseer dismisses the flag
        sevs = by_result.get(v.result_id, []) + by_agent.get(res.agent_id, [])
        top = max(sevs, key=SEVERITY_ORDER.index) if sevs else None
        row = LeaderboardRow(
            result_id=v.result_id,
            agent=name,
            task=v.task,
            dev_acc=v.released_dev,
            sealed_acc=None,
            sealed_low=None,
            sealed_high=None,
            pgr=None,
            open_flags=len(sevs),
            top_severity=top,  # type: ignore[arg-type]
            snapshot_sha=res.snapshot_sha,
            config=res.config,
            verified_at=res.verified_at,
            transfer=verdicts.get(v.result_id),
            uses_test_time_structure=v.result_id in structure,
            private=not full,
        )
        if full:
            row = row.model_copy(
                update={
                    "dev_acc": v.dev_acc,
                    "dev_low": v.dev_low,
                    "dev_high": v.dev_high,
                    "sealed_acc": v.sealed_acc,
                    "sealed_low": v.sealed_low,
                    "sealed_high": v.sealed_high,
                    "pgr": v.pgr,
                    "pgr_low": v.pgr_low,
                    "pgr_high": v.pgr_high,
                    "weak_acc": v.weak_acc,
                    "ceiling_acc": v.ceiling_acc,
                    "ceiling_structured_acc": v.ceiling_structured_acc,
                    "pgr_structured": v.pgr_structured,
                    "pgr_structured_low": v.pgr_structured_low,
                    "pgr_structured_high": v.pgr_structured_high,
                    "pgr_rank": _rank(v),
                    "verification_seeds": v.seeds if _caller.role == "overseer" else None,
                }
            )
        out.append(row)
    return out


@router.post("/tasks/{task}/reveal", tags=["results"])
def reveal(
    db: DB, caller: Overseer, state: State, task: Annotated[str, Path(pattern=TASK_PATTERN)]
) -> RevealOut:
    """The final reveal (Kaggle's private leaderboard): from now on every caller sees the task's sealed
    figures. Overseers only; revealing twice returns the first reveal."""
    if task not in state.task_names():
        raise HTTPException(404, f"unknown task {task!r}; available: {', '.join(state.task_names())}")
    row = db.scalars(select(Reveal).where(Reveal.task == task)).first()
    if row is None:
        row = Reveal(task=task, revealed_by=caller.id, created_at=datetime.now(UTC))
        db.add(row)
        db.flush()
    who = db.get(Agent, row.revealed_by)
    return RevealOut(task=task, revealed_by=who.name if who else "?", created_at=row.created_at)


def latest_verdicts(db: Session, result_ids: list[int]) -> dict[int, str]:
    """The newest finished transfer verdict per result (for leaderboard badges)."""
    if not result_ids:
        return {}
    rows = db.execute(
        select(TransferVerdict.result_id, TransferVerdict.verdict)
        .where(TransferVerdict.result_id.in_(result_ids), TransferVerdict.status == "done")
        .order_by(TransferVerdict.id)
    ).tuples()
    return {rid: str(verdict) for rid, verdict in rows if verdict is not None}


def transfer_out(t: TransferVerdict) -> TransferOut:
    return TransferOut(
        id=t.id,
        result_id=t.result_id,
        status=t.status,  # type: ignore[arg-type]
        verdict=t.verdict,
        reason=t.reason,
        settings_fingerprint=(t.report or {}).get("settings_hash"),
        report=t.report or {},
        created_at=t.created_at,
        finished_at=t.finished_at,
    )


@router.post("/results/{result_id}/transfer", status_code=202, tags=["transfer"])
def request_transfer(result_id: ResultId, db: DB, caller: Overseer) -> TransferOut:
    """Queue the transfer gate for a verified result (overseers only); the verification worker runs it
    with the pre-registered settings. A request already queued or running is returned, not duplicated."""
    r = db.get(Result, result_id)
    if r is None:
        raise HTTPException(404, f"no result {result_id}")
    if r.status != "verified":
        raise HTTPException(
            409, f"result {result_id} is {r.status!r}; the gate runs on verified results only"
        )
    pending = db.scalars(
        select(TransferVerdict).where(
            TransferVerdict.result_id == result_id, TransferVerdict.status.in_(("queued", "running"))
        )
    ).first()
    if pending is not None:
        return transfer_out(pending)
    t = TransferVerdict(result_id=result_id, status="queued", settings={}, report={}, requested_by=caller.id)
    db.add(t)
    db.flush()
    return transfer_out(t)


@router.get("/results/{result_id}/transfer", tags=["transfer"])
def get_transfer(result_id: ResultId, db: DB, caller: Caller) -> list[TransferOut]:
    """Every transfer-gate run for the result, newest last (aggregate verdicts only: no per-item data).
    Agents get the verdicts without the overseers' evidence: no audit findings, no per-suite notes (they
    can carry a method's own error text), a generic reason for a failed run."""
    if db.get(Result, result_id) is None:
        raise HTTPException(404, f"no result {result_id}")
    rows = db.scalars(
        select(TransferVerdict).where(TransferVerdict.result_id == result_id).order_by(TransferVerdict.id)
    )
    out = [transfer_out(t) for t in rows]
    if caller.role == "overseer":
        return out
    return [_for_agents(t) for t in out]


def _for_agents(t: TransferOut) -> TransferOut:
    report = {k: v for k, v in t.report.items() if k not in ("audit_flags", "reason")}
    if isinstance(report.get("suites"), list):
        report["suites"] = [
            {k: v for k, v in s.items() if k != "note"} if isinstance(s, dict) else s
            for s in report["suites"]
        ]
    reason = t.reason
    if t.status == "failed":
        reason = "the gate could not run this method; an overseer can see why"
    elif t.verdict == "blocked":
        reason = "blocked: critical findings during the gate's runs are under review"
    return t.model_copy(update={"report": report, "reason": reason})

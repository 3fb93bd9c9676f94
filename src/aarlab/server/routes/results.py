"""Results queued for verified re-execution, and the leaderboard of verified scores only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aarlab.server.deps import DB, Caller, Overseer, State
from aarlab.server.models import Agent, Result, ReviewFlag, Snapshot, TransferVerdict, VerifiedScore
from aarlab.server.schemas import (
    SEVERITY_ORDER,
    TASK_PATTERN,
    LeaderboardRow,
    ResultIn,
    ResultOut,
    TransferOut,
)

router = APIRouter(prefix="/api/v1", tags=["results"])
ResultId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _out(r: Result) -> ResultOut:
    return ResultOut(
        id=r.id,
        task=r.task,
        snapshot_sha=r.snapshot_sha,
        status=r.status,
        created_at=r.created_at,
        reason=r.reason,
    )


@router.post("/results", status_code=201)
def submit_result(body: ResultIn, state: State, db: DB, caller: Caller) -> ResultOut:
    """Queue a method (snapshot + config) for verified re-execution; claimed numbers are never ranked."""
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
    r = Result(
        agent_id=caller.id,
        parent_id=body.parent_id,
        task=body.task,
        snapshot_sha=body.snapshot_sha,
        config=body.config,
        claimed=body.claimed,
        status="queued",
    )
    db.add(r)
    db.flush()
    return _out(r)


@router.get("/results")
def my_results(db: DB, caller: Caller) -> list[ResultOut]:
    """Your own results and their status."""
    return [
        _out(r) for r in db.scalars(select(Result).where(Result.agent_id == caller.id).order_by(Result.id))
    ]


@router.get("/leaderboard")
def leaderboard(
    db: DB, _caller: Caller, task: Annotated[str, Query(pattern=TASK_PATTERN)]
) -> list[LeaderboardRow]:
    """Verified rows of results that are not disqualified, best sealed accuracy first, with the number
    of open flags (on the result or its agent's dev log for the task) and the highest open severity.
    Claimed numbers never appear here."""
    rows = list(
        db.execute(
            select(VerifiedScore, Agent.name, Result)
            .join(Result, Result.id == VerifiedScore.result_id)
            .join(Agent, Agent.id == Result.agent_id)
            .where(VerifiedScore.task == task, Result.status == "verified")
            .order_by(VerifiedScore.sealed_acc.desc().nulls_last(), VerifiedScore.id)
        ).tuples()
    )
    result_ids = [v.result_id for v, _, _ in rows]
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
        sevs = by_result.get(v.result_id, []) + by_agent.get(res.agent_id, [])
        top = max(sevs, key=SEVERITY_ORDER.index) if sevs else None
        out.append(
            LeaderboardRow(
                result_id=v.result_id,
                agent=name,
                task=v.task,
                dev_acc=v.dev_acc,
                dev_low=v.dev_low,
                dev_high=v.dev_high,
                sealed_acc=v.sealed_acc,
                sealed_low=v.sealed_low,
                sealed_high=v.sealed_high,
                pgr=v.pgr,
                pgr_low=v.pgr_low,
                pgr_high=v.pgr_high,
                weak_acc=v.weak_acc,
                ceiling_acc=v.ceiling_acc,
                open_flags=len(sevs),
                top_severity=top,  # type: ignore[arg-type]
                snapshot_sha=res.snapshot_sha,
                config=res.config,
                verified_at=res.verified_at,
                transfer=verdicts.get(v.result_id),
            )
        )
    return out


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
def get_transfer(result_id: ResultId, db: DB, _caller: Caller) -> list[TransferOut]:
    """Every transfer-gate run for the result, newest last (aggregate verdicts only: no per-item data)."""
    if db.get(Result, result_id) is None:
        raise HTTPException(404, f"no result {result_id}")
    rows = db.scalars(
        select(TransferVerdict).where(TransferVerdict.result_id == result_id).order_by(TransferVerdict.id)
    )
    return [transfer_out(t) for t in rows]

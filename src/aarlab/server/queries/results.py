"""Results queued for verified re-execution, transfer-gate requests, and the final reveal.

What a caller sees follows :mod:`aarlab.server.private`: agents never see the verification seeds
drawn for their results, nor the overseers' evidence from a gate run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aarlab.api.schemas import ResultIn, ResultOut, RevealOut, TransferOut
from aarlab.server.errors import Conflict, NotFound, Unprocessable
from aarlab.server.models import Agent, Result, Reveal, Snapshot, TransferVerdict, VerifiedScore
from aarlab.server.queries.quota import check_quota, result_quota
from aarlab.server.state import ServerState

_SEED = re.compile(r"\bseed \d+")


def result_out(r: Result, released_dev: float | None = None, *, private: bool = False) -> ResultOut:
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


def require_task(state: ServerState, task: str) -> None:
    """:class:`NotFound` naming the available tasks when ``task`` is not on this server."""
    if task not in state.task_names():
        raise NotFound(f"unknown task {task!r}; available: {', '.join(state.task_names())}")


def submit_result(state: ServerState, db: Session, agent: Agent, body: ResultIn) -> ResultOut:
    """Queue a result for verification (status ``queued``), committed before it returns.

    Raises :class:`NotFound` (unknown task), :class:`Unprocessable` (no such snapshot, a parent of
    another task) and the quota's 429/403 (:func:`.quota.check_quota`)."""
    require_task(state, body.task)
    if db.get(Snapshot, body.snapshot_sha) is None:
        raise Unprocessable(
            f"no snapshot {body.snapshot_sha}; upload the method folder with PUT /api/v1/snapshots first"
        )
    if body.parent_id is not None:
        parent = db.get(Result, body.parent_id)
        if parent is None or parent.task != body.task:
            raise Unprocessable(
                f"parent_id {body.parent_id} is not a result of task {body.task!r}; give the id of the "
                "result this method started from (GET /api/v1/leaderboard lists them), or leave it out"
            )
    with state.agent_lock(agent.id):
        now = datetime.now(UTC)
        check_quota(db, result_quota(state.settings), agent.id, body.task, now)
        r = Result(
            agent_id=agent.id,
            parent_id=body.parent_id,
            task=body.task,
            snapshot_sha=body.snapshot_sha,
            config=body.config,
            claimed=body.claimed,
            status="queued",
            created_at=now,
        )
        db.add(r)
        db.flush()
        db.commit()
    return result_out(r)


def own_results(db: Session, agent: Agent) -> list[ResultOut]:
    """The agent's results, oldest first, with the dev score the result Ladder released for each."""
    rows = db.execute(
        select(Result, VerifiedScore.released_dev)
        .outerjoin(VerifiedScore, VerifiedScore.result_id == Result.id)
        .where(Result.agent_id == agent.id)
        .order_by(Result.id)
    ).tuples()
    return [result_out(r, released, private=agent.role != "overseer") for r, released in rows]


def reveal(state: ServerState, db: Session, overseer: Agent, task: str) -> RevealOut:
    """Reveal the task's private board (idempotent: revealing twice returns the first reveal)."""
    require_task(state, task)
    row = db.scalars(select(Reveal).where(Reveal.task == task)).first()
    if row is None:
        row = Reveal(task=task, revealed_by=overseer.id, created_at=datetime.now(UTC))
        db.add(row)
        db.flush()
    who = db.get(Agent, row.revealed_by)
    return RevealOut(task=task, revealed_by=who.name if who else "?", created_at=row.created_at)


def transfer_out(t: TransferVerdict) -> TransferOut:
    """A gate run as overseers see it (the full report)."""
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


def _existing(db: Session, result_id: int) -> Result:
    r = db.get(Result, result_id)
    if r is None:
        raise NotFound(f"no result {result_id}")
    return r


def request_transfer(db: Session, overseer: Agent, result_id: int) -> TransferOut:
    """Queue the transfer gate for a verified result; a request already queued or running is
    returned, not duplicated. :class:`NotFound`, or :class:`Conflict` when it is not verified."""
    r = _existing(db, result_id)
    if r.status != "verified":
        raise Conflict(f"result {result_id} is {r.status!r}; the gate runs on verified results only")
    pending = db.scalars(
        select(TransferVerdict).where(
            TransferVerdict.result_id == result_id, TransferVerdict.status.in_(("queued", "running"))
        )
    ).first()
    if pending is not None:
        return transfer_out(pending)
    t = TransferVerdict(
        result_id=result_id, status="queued", settings={}, report={}, requested_by=overseer.id
    )
    db.add(t)
    db.flush()
    return transfer_out(t)


def transfers(db: Session, caller: Agent, result_id: int) -> list[TransferOut]:
    """Every gate run for the result, oldest first; agents get them without the overseers' evidence."""
    _existing(db, result_id)
    rows = db.scalars(
        select(TransferVerdict).where(TransferVerdict.result_id == result_id).order_by(TransferVerdict.id)
    )
    out = [transfer_out(t) for t in rows]
    if caller.role == "overseer":
        return out
    return [_for_agents(t) for t in out]


def _for_agents(t: TransferOut) -> TransferOut:
    """No audit findings, no per-suite notes (they can carry a method's own error text), and a generic
    reason for a failed or blocked run."""
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

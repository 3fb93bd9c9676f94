"""The review queue: overseers read detector flags and dismiss them or disqualify what they concern.

Agents get 403 on every route here: flags describe how a result was caught, and showing them to the
agents would teach them what the detectors look for (monitor verdicts never feed an agent's reward).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from aarlab.api.schemas import FlagOut, FlagStatus, ResolveIn
from aarlab.server.deps import DB, Overseer
from aarlab.server.models import Agent, Result, ReviewFlag

router = APIRouter(prefix="/api/v1", tags=["review"])
FlagId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def flag_out(db: Session, f: ReviewFlag) -> FlagOut:
    ids = [f.agent_id, f.resolved_by or 0]
    names = {i: n for i, n in db.execute(select(Agent.id, Agent.name).where(Agent.id.in_(ids))).tuples()}
    result = db.get(Result, f.result_id) if f.result_id is not None else None
    return FlagOut(
        id=f.id,
        result_id=f.result_id,
        agent=names.get(f.agent_id, "?"),
        task=f.task,
        kind=f.kind,
        severity=f.severity,  # type: ignore[arg-type]
        summary=f.summary,
        evidence=f.evidence,
        status=f.status,  # type: ignore[arg-type]
        resolved_by=names.get(f.resolved_by) if f.resolved_by is not None else None,
        note=f.note,
        created_at=f.created_at,
        resolved_at=f.resolved_at,
        result_status=result.status if result else None,
    )


def _open_flag(db: Session, flag_id: int) -> ReviewFlag:
    f = db.get(ReviewFlag, flag_id, with_for_update=True)
    if f is None:
        raise HTTPException(404, f"no flag {flag_id}; list them with GET /api/v1/flags?status=open")
    if f.status != "open":
        raise HTTPException(409, f"flag {flag_id} is already {f.status} (a resolution is final)")
    return f


@router.get("/flags")
def list_flags(
    db: DB,
    _overseer: Overseer,
    status: Annotated[
        FlagStatus | Literal["all"], Query(description="open, dismissed, disqualified or all")
    ] = "open",
    task: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[FlagOut]:
    """Flags in the review queue (open ones by default), oldest first."""
    q = select(ReviewFlag).order_by(ReviewFlag.id).limit(limit)
    if status != "all":
        q = q.where(ReviewFlag.status == status)
    if task is not None:
        q = q.where(ReviewFlag.task == task)
    return [flag_out(db, f) for f in db.scalars(q)]


@router.get("/flags/{flag_id}")
def get_flag(flag_id: FlagId, db: DB, _overseer: Overseer) -> FlagOut:
    """One flag with its full evidence."""
    f = db.get(ReviewFlag, flag_id)
    if f is None:
        raise HTTPException(404, f"no flag {flag_id}; list them with GET /api/v1/flags?status=open")
    return flag_out(db, f)


def _resolve(f: ReviewFlag, status: FlagStatus, overseer: Agent, note: str) -> None:
    f.status, f.resolved_by, f.note, f.resolved_at = status, overseer.id, note, datetime.now(UTC)


@router.post("/flags/{flag_id}/dismiss")
def dismiss_flag(flag_id: FlagId, body: ResolveIn, db: DB, overseer: Overseer) -> FlagOut:
    """Close a flag as a false alarm (the note says why); the result stays on the leaderboard."""
    f = _open_flag(db, flag_id)
    _resolve(f, "dismissed", overseer, body.note)
    db.flush()
    return flag_out(db, f)


@router.post("/flags/{flag_id}/disqualify")
def disqualify_flag(flag_id: FlagId, body: ResolveIn, db: DB, overseer: Overseer) -> FlagOut:
    """Disqualify the flagged result (for a per-agent flag: all that agent's results on the task); they
    leave the leaderboard and keep the reason, including any earlier verification reason."""
    f = _open_flag(db, flag_id)
    if f.result_id is not None:
        targets = [r for r in [db.get(Result, f.result_id)] if r is not None]
    else:
        targets = list(
            db.scalars(
                select(Result).where(
                    Result.agent_id == f.agent_id, Result.task == f.task, Result.status != "disqualified"
                )
            )
        )
    why = f"disqualified by {overseer.name} (flag {f.id}, {f.kind}): {body.note}"
    for r in targets:
        r.reason = why if not r.reason or r.status == "disqualified" else f"{why}; earlier: {r.reason}"
        r.status = "disqualified"
    _resolve(f, "disqualified", overseer, body.note)
    db.flush()
    return flag_out(db, f)

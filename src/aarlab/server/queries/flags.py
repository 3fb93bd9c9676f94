"""The review queue: detector flags, and an overseer's resolution of one (dismiss or disqualify)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from aarlab.api.schemas import FlagOut, FlagStatus
from aarlab.server.errors import Conflict, NotFound
from aarlab.server.models import Agent, Result, ReviewFlag

_WHERE = "list them with GET /api/v1/flags?status=open"


def flag_out(db: Session, f: ReviewFlag) -> FlagOut:
    """A flag with its agent's and resolver's names and the flagged result's status."""
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


def list_flags(
    db: Session, status: FlagStatus | Literal["all"], task: str | None, limit: int
) -> list[FlagOut]:
    """Flags with ``status`` (or all), optionally of one task, oldest first, at most ``limit``."""
    q = select(ReviewFlag).order_by(ReviewFlag.id).limit(limit)
    if status != "all":
        q = q.where(ReviewFlag.status == status)
    if task is not None:
        q = q.where(ReviewFlag.task == task)
    return [flag_out(db, f) for f in db.scalars(q)]


def recently_resolved(db: Session, limit: int = 20) -> list[FlagOut]:
    """The newest ``limit`` resolved flags, most recent first."""
    q = select(ReviewFlag).where(ReviewFlag.status != "open").order_by(ReviewFlag.resolved_at.desc())
    return [flag_out(db, f) for f in db.scalars(q.limit(limit))]


def get_flag(db: Session, flag_id: int) -> FlagOut:
    f = db.get(ReviewFlag, flag_id)
    if f is None:
        raise NotFound(f"no flag {flag_id}; {_WHERE}")
    return flag_out(db, f)


def _open_flag(db: Session, flag_id: int) -> ReviewFlag:
    f = db.get(ReviewFlag, flag_id, with_for_update=True)
    if f is None:
        raise NotFound(f"no flag {flag_id}; {_WHERE}")
    if f.status != "open":
        raise Conflict(f"flag {flag_id} is already {f.status} (a resolution is final)")
    return f


def _resolve(f: ReviewFlag, status: FlagStatus, overseer: Agent, note: str) -> None:
    f.status, f.resolved_by, f.note, f.resolved_at = status, overseer.id, note, datetime.now(UTC)


def dismiss(db: Session, overseer: Agent, flag_id: int, note: str) -> FlagOut:
    """Close an open flag as a false alarm; :class:`NotFound`, or :class:`Conflict` if resolved."""
    f = _open_flag(db, flag_id)
    _resolve(f, "dismissed", overseer, note)
    db.flush()
    return flag_out(db, f)


def disqualify(db: Session, overseer: Agent, flag_id: int, note: str) -> FlagOut:
    """Disqualify the flagged result (for a per-agent flag: all that agent's results on the task),
    keeping any earlier reason; :class:`NotFound`, or :class:`Conflict` if the flag is resolved."""
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
    why = f"disqualified by {overseer.name} (flag {f.id}, {f.kind}): {note}"
    for r in targets:
        r.reason = why if not r.reason or r.status == "disqualified" else f"{why}; earlier: {r.reason}"
        r.status = "disqualified"
    _resolve(f, "disqualified", overseer, note)
    db.flush()
    return flag_out(db, f)

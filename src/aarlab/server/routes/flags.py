"""The review queue: overseers read detector flags and dismiss them or disqualify what they concern.

Agents get 403 on every route here: flags describe how a result was caught, and showing them to the
agents would teach them what the detectors look for (monitor verdicts never feed an agent's reward).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from aarlab.api.schemas import FlagOut, FlagStatus, ResolveIn
from aarlab.server.deps import DB, Overseer
from aarlab.server.queries import flags

router = APIRouter(prefix="/api/v1", tags=["review"])
FlagId = Annotated[int, Path(ge=1, le=2**31 - 1)]


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
    return flags.list_flags(db, status, task, limit)


@router.get("/flags/{flag_id}")
def get_flag(flag_id: FlagId, db: DB, _overseer: Overseer) -> FlagOut:
    """One flag with its full evidence."""
    return flags.get_flag(db, flag_id)


@router.post("/flags/{flag_id}/dismiss")
def dismiss_flag(flag_id: FlagId, body: ResolveIn, db: DB, overseer: Overseer) -> FlagOut:
    """Close a flag as a false alarm (the note says why); the result stays on the leaderboard."""
    return flags.dismiss(db, overseer, flag_id, body.note)


@router.post("/flags/{flag_id}/disqualify")
def disqualify_flag(flag_id: FlagId, body: ResolveIn, db: DB, overseer: Overseer) -> FlagOut:
    """Disqualify the flagged result (for a per-agent flag: all that agent's results on the task); they
    leave the leaderboard and keep the reason, including any earlier verification reason."""
    return flags.disqualify(db, overseer, flag_id, body.note)

"""Dev items and Ladder-scored dev submissions (the only feedback an agent gets from labels)."""

from __future__ import annotations

from fastapi import APIRouter, Path

from aarlab.api.schemas import (
    TASK_PATTERN,
    AdminSubmissionRow,
    DevFeedback,
    DevItems,
    DevSubmissionIn,
    DevSubmissionRow,
    TaskInfo,
)
from aarlab.server.deps import DB, Caller, Overseer, State
from aarlab.server.queries import dev

router = APIRouter(prefix="/api/v1", tags=["dev"])
TaskName = Path(pattern=TASK_PATTERN, description="a task name from GET /api/v1/tasks")


@router.get("/tasks")
def list_tasks(state: State, _caller: Caller) -> list[TaskInfo]:
    """Tasks this server scores."""
    return dev.task_infos(state)


@router.get("/tasks/{task}/dev")
def dev_items(state: State, _caller: Caller, task: str = TaskName) -> DevItems:
    """The dev inputs (ids and texts, no labels)."""
    return dev.dev_items(dev.task_or_404(state, task))


@router.post("/tasks/{task}/dev/submissions", responses={429: {"description": "rate limited"}})
def submit_dev(
    body: DevSubmissionIn, state: State, db: DB, caller: Caller, task: str = TaskName
) -> DevFeedback:
    """Score dev predictions Ladder-style: a coarse score, only when it beats your best by a paired margin."""
    t = dev.task_or_404(state, task)
    return dev.submit_dev(state, db, caller, t, dev.prediction_vector(t, body.predictions))


@router.get("/tasks/{task}/dev/submissions")
def my_submissions(state: State, db: DB, caller: Caller, task: str = TaskName) -> list[DevSubmissionRow]:
    """Your own dev submissions (what was reported to you; nothing more)."""
    dev.task_or_404(state, task)
    return dev.own_submissions(db, caller, task)


@router.get("/admin/submissions", tags=["admin"])
def all_submissions(db: DB, _overseer: Overseer, limit: int = 100) -> list[AdminSubmissionRow]:
    """Every agent's dev submissions with the exact score (overseers only)."""
    return dev.all_submissions(db, limit)

"""Dev items and Ladder-scored dev submissions (the only feedback an agent gets from labels)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
from fastapi import APIRouter, HTTPException, Path
from sqlalchemy import func, select

from aarlab.api.schemas import (
    TASK_PATTERN,
    AdminSubmissionRow,
    DevFeedback,
    DevItem,
    DevItems,
    DevSubmissionIn,
    DevSubmissionRow,
    TaskInfo,
)
from aarlab.server.datadir import EvalTask
from aarlab.server.deps import DB, Caller, Overseer, State
from aarlab.server.ladder import ladder_step
from aarlab.server.models import Agent, DevSubmission, LadderBest
from aarlab.server.state import ServerState, TaskUnavailableError
from aarlab.testbed.errors import UnknownNameError

router = APIRouter(prefix="/api/v1", tags=["dev"])
TaskName = Path(pattern=TASK_PATTERN, description="a task name from GET /api/v1/tasks")


def _task(state: ServerState, name: str) -> EvalTask:
    try:
        return state.task(name)
    except UnknownNameError as e:
        raise HTTPException(404, str(e)) from None


@router.get("/tasks")
def list_tasks(state: State, _caller: Caller) -> list[TaskInfo]:
    """Tasks this server scores."""
    out = []
    for name in state.usable_task_names():
        t = state.task(name)
        out.append(
            TaskInfo(
                name=name,
                schema_name=str(t.meta["schema"]),
                weak=str(t.meta["weak"]),
                strong=str(t.meta["strong"]),
                n_dev=len(t.dev),
            )
        )
    return out


@router.get("/tasks/{task}/dev")
def dev_items(state: State, _caller: Caller, task: str = TaskName) -> DevItems:
    """The dev inputs (ids and texts, no labels)."""
    t = _task(state, task)
    return DevItems(
        task=task, items=[DevItem(id=i.id, texts=list(i.texts), group=i.group) for i in t.dev_items]
    )


def _vector(t: EvalTask, predictions: dict[str, float]) -> np.ndarray:
    """Predictions in dev order, after checking ids, count and values (422 says what to fix)."""
    index = t.dev_index
    pos = np.fromiter((index.get(k, -1) for k in predictions), dtype=np.int64, count=len(predictions))
    if (pos < 0).any():
        bad = [k for k in predictions if k not in index]
        raise HTTPException(
            422,
            f"{len(bad)} ids are not dev items of task {t.name!r} (e.g. {bad[0][:40]!r}); "
            f"use the ids from GET /api/v1/tasks/{t.name}/dev",
        )
    missing = [k for k in index if k not in predictions]
    if missing or len(index) != len(t.dev):
        if not missing:  # ids repeat in the task's own data: no submission can be scored
            raise TaskUnavailableError(
                f"task {t.name!r} has {len(t.dev)} dev items but {len(index)} distinct ids; it cannot be "
                "scored until an operator re-creates it with unique ids"
            )
        raise HTTPException(
            422,
            f"got {len(predictions)} predictions for {len(t.dev)} dev items "
            f"(missing {len(missing)}, e.g. {missing[0]!r}); predict every dev item",
        )
    values = np.fromiter(predictions.values(), dtype=np.float64, count=len(predictions))
    bad_value = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad_value.any():
        k = list(predictions)[int(np.flatnonzero(bad_value)[0])]
        raise HTTPException(
            422,
            f"prediction for {k!r} is {predictions[k]}; send probabilities in [0, 1], "
            "not logits, NaN or infinity",
        )
    vec = np.empty(len(t.dev), dtype=np.float64)
    vec[pos] = values
    return vec


@router.post("/tasks/{task}/dev/submissions", responses={429: {"description": "rate limited"}})
def submit_dev(
    body: DevSubmissionIn, state: State, db: DB, caller: Caller, task: str = TaskName
) -> DevFeedback:
    """Score dev predictions Ladder-style: a coarse score, only when it beats your best by a paired margin."""
    t = _task(state, task)
    vec = _vector(t, body.predictions)
    cfg = state.settings
    with state.agent_lock(caller.id):
        now = datetime.now(UTC)
        window = now - timedelta(seconds=60)
        recent = list(
            db.scalars(
                select(DevSubmission.created_at)
                .where(DevSubmission.agent_id == caller.id, DevSubmission.created_at > window)
                .order_by(DevSubmission.created_at)
            )
        )
        if len(recent) >= cfg.rate_per_minute:
            oldest = recent[0] if recent[0].tzinfo else recent[0].replace(tzinfo=UTC)
            wait = max(1, math.ceil((oldest - window).total_seconds()))
            raise HTTPException(
                429,
                f"rate limit: {cfg.rate_per_minute} dev submissions per minute; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        used = (
            db.scalar(
                select(func.count())
                .select_from(DevSubmission)
                .where(DevSubmission.agent_id == caller.id, DevSubmission.task == task)
            )
            or 0
        )
        if used >= cfg.dev_budget:
            raise HTTPException(
                403,
                f"dev budget used up ({cfg.dev_budget} submissions on {task!r}); "
                "submit a result for verified scoring instead",
            )
        best = db.scalar(select(LadderBest).where(LadderBest.agent_id == caller.id, LadderBest.task == task))
        best_vec = None
        if best is not None:
            prev = db.get(DevSubmission, best.submission_id)
            assert prev is not None
            best_vec = np.frombuffer(prev.predictions, dtype=np.float32).astype(np.float64)
        decision = ladder_step(
            t.dev.labels,
            vec.astype(np.float32).astype(np.float64),
            best_vec,
            best.reported_score if best else None,
            cfg.ladder_step,
        )
        sub = DevSubmission(
            agent_id=caller.id,
            task=task,
            predictions=vec.astype(np.float32).tobytes(),
            score=decision.score,
            reported_score=decision.reported,
            improved=decision.improved,
            created_at=now,
        )
        db.add(sub)
        db.flush()
        if decision.improved:
            if best is None:
                db.add(
                    LadderBest(
                        agent_id=caller.id, task=task, submission_id=sub.id, reported_score=decision.reported
                    )
                )
            else:
                best.submission_id, best.reported_score = sub.id, decision.reported
        db.commit()
    return DevFeedback(
        reported_score=decision.reported, improved=decision.improved, budget_left=cfg.dev_budget - used - 1
    )


@router.get("/tasks/{task}/dev/submissions")
def my_submissions(state: State, db: DB, caller: Caller, task: str = TaskName) -> list[DevSubmissionRow]:
    """Your own dev submissions (what was reported to you; nothing more)."""
    _task(state, task)
    rows = db.scalars(
        select(DevSubmission)
        .where(DevSubmission.agent_id == caller.id, DevSubmission.task == task)
        .order_by(DevSubmission.id)
    )
    return [
        DevSubmissionRow(
            id=r.id,
            task=r.task,
            reported_score=r.reported_score,
            improved=r.improved,
            created_at=r.created_at,
        )
        for r in rows
    ]


@router.get("/admin/submissions", tags=["admin"])
def all_submissions(db: DB, _overseer: Overseer, limit: int = 100) -> list[AdminSubmissionRow]:
    """Every agent's dev submissions with the exact score (overseers only)."""
    rows = db.execute(
        select(DevSubmission, Agent.name)
        .join(Agent, Agent.id == DevSubmission.agent_id)
        .order_by(DevSubmission.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    return [
        AdminSubmissionRow(
            id=s.id,
            task=s.task,
            reported_score=s.reported_score,
            improved=s.improved,
            created_at=s.created_at,
            agent=name,
            score=s.score,
        )
        for s, name in rows
    ]

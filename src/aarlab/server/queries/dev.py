"""Tasks, dev items and Ladder-scored dev submissions (the only feedback an agent gets from labels)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from aarlab.api.schemas import AdminSubmissionRow, DevFeedback, DevItem, DevItems, DevSubmissionRow, TaskInfo
from aarlab.server.datadir import EvalTask
from aarlab.server.errors import NotFound, Unprocessable
from aarlab.server.ladder import ladder_step
from aarlab.server.models import Agent, DevSubmission, LadderBest
from aarlab.server.queries.quota import check_quota, dev_quota
from aarlab.server.state import ServerState, TaskUnavailableError
from aarlab.testbed.errors import UnknownNameError


def task_or_404(state: ServerState, name: str) -> EvalTask:
    """The loaded task; :class:`NotFound` when there is none of that name (503 when it is broken)."""
    try:
        return state.task(name)
    except UnknownNameError as e:
        raise NotFound(str(e)) from None


def task_infos(state: ServerState) -> list[TaskInfo]:
    """Every task that loads: its schema, weak and strong model names and dev size."""
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


def dev_items(t: EvalTask) -> DevItems:
    """The dev inputs (ids, texts and groups; no labels)."""
    return DevItems(
        task=t.name, items=[DevItem(id=i.id, texts=list(i.texts), group=i.group) for i in t.dev_items]
    )


def prediction_vector(t: EvalTask, predictions: dict[str, float]) -> np.ndarray:
    """Predictions in dev order (float64, shape ``(n_dev,)``), after checking ids, count and values.

    Raises :class:`Unprocessable` (422) saying what to fix, or ``TaskUnavailableError`` (503) when the
    task's own dev ids repeat."""
    index = t.dev_index
    pos = np.fromiter((index.get(k, -1) for k in predictions), dtype=np.int64, count=len(predictions))
    if (pos < 0).any():
        bad = [k for k in predictions if k not in index]
        raise Unprocessable(
            f"{len(bad)} ids are not dev items of task {t.name!r} (e.g. {bad[0][:40]!r}); "
            f"use the ids from GET /api/v1/tasks/{t.name}/dev"
        )
    missing = [k for k in index if k not in predictions]
    if missing or len(index) != len(t.dev):
        if not missing:  # ids repeat in the task's own data: no submission can be scored
            raise TaskUnavailableError(
                f"task {t.name!r} has {len(t.dev)} dev items but {len(index)} distinct ids; it cannot be "
                "scored until an operator re-creates it with unique ids"
            )
        raise Unprocessable(
            f"got {len(predictions)} predictions for {len(t.dev)} dev items "
            f"(missing {len(missing)}, e.g. {missing[0]!r}); predict every dev item"
        )
    values = np.fromiter(predictions.values(), dtype=np.float64, count=len(predictions))
    bad_value = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad_value.any():
        k = list(predictions)[int(np.flatnonzero(bad_value)[0])]
        raise Unprocessable(
            f"prediction for {k!r} is {predictions[k]}; send probabilities in [0, 1], "
            "not logits, NaN or infinity"
        )
    vec = np.empty(len(t.dev), dtype=np.float64)
    vec[pos] = values
    return vec


def submit_dev(state: ServerState, db: Session, agent: Agent, t: EvalTask, vec: np.ndarray) -> DevFeedback:
    """Store a dev submission and answer Ladder-style: a coarse score, reported only when it beats the
    agent's best by a paired margin. Rate limited and budgeted (:func:`.quota.check_quota`); committed
    before it returns, under the agent's lock, so the Ladder state is read and updated atomically."""
    cfg = state.settings
    with state.agent_lock(agent.id):
        now = datetime.now(UTC)
        used = check_quota(db, dev_quota(cfg), agent.id, t.name, now)
        best = db.scalar(select(LadderBest).where(LadderBest.agent_id == agent.id, LadderBest.task == t.name))
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
            agent_id=agent.id,
            task=t.name,
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
                        agent_id=agent.id, task=t.name, submission_id=sub.id, reported_score=decision.reported
                    )
                )
            else:
                best.submission_id, best.reported_score = sub.id, decision.reported
        db.commit()
    return DevFeedback(
        reported_score=decision.reported, improved=decision.improved, budget_left=cfg.dev_budget - used - 1
    )


def _row(s: DevSubmission) -> DevSubmissionRow:
    return DevSubmissionRow(
        id=s.id, task=s.task, reported_score=s.reported_score, improved=s.improved, created_at=s.created_at
    )


def own_submissions(db: Session, agent: Agent, task: str) -> list[DevSubmissionRow]:
    """The agent's dev submissions on ``task``, oldest first: what was reported, nothing more."""
    rows = db.scalars(
        select(DevSubmission)
        .where(DevSubmission.agent_id == agent.id, DevSubmission.task == task)
        .order_by(DevSubmission.id)
    )
    return [_row(r) for r in rows]


def all_submissions(db: Session, limit: int) -> list[AdminSubmissionRow]:
    """Every agent's newest ``limit`` dev submissions (clamped to 1..1000) with the exact score."""
    rows = db.execute(
        select(DevSubmission, Agent.name)
        .join(Agent, Agent.id == DevSubmission.agent_id)
        .order_by(DevSubmission.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    return [AdminSubmissionRow(**_row(s).model_dump(), agent=name, score=s.score) for s, name in rows]

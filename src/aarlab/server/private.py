"""Private scores: what of a verified score an agent may see, the result Ladder, and per-result seeds.

* **Agents** see a verified result's *dev* score only as the result Ladder releases it: rounded to the
  server's ``ladder_step``, and only when the result beats the same agent's best released result on the
  task by more than one paired standard error of the per-item dev loss (Blum & Hardt's Ladder, as for
  dev submissions). Nothing computed on the sealed partition (sealed accuracy, PGR, weak and ceiling
  accuracy, their intervals) and no exact dev figure reaches an agent, until an overseer reveals the
  task's private board (:class:`~aarlab.server.models.Reveal`, Kaggle's final private leaderboard).
* **Overseers** see everything, including the verification seeds drawn for each result.
* **Verification seeds** are drawn per result from the task's secret pool, keyed by the server's secret
  and the result id: unpredictable to agents, reproducible for the server (stored with the score), and
  prepared ahead by the trusted side.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from aarlab.server.datadir import EvalTask, keyed
from aarlab.server.ladder import ladder_step
from aarlab.server.models import Agent, Result, Reveal, VerifiedScore
from aarlab.testbed.seeds import SEED_POOL_HIGH, SEED_POOL_LOW, SEED_POOL_SIZE


def seed_pool(secret: bytes, task: str, size: int = SEED_POOL_SIZE) -> tuple[int, ...]:
    """The task's pool of ``size`` distinct verification seeds, in a secret order (keyed by the server
    secret: an agent cannot know them; the server can reproduce them and prepare their teachers and
    ceilings ahead, :func:`aarlab.verify.artefacts.ArtefactCache.prefetch`)."""
    rng = np.random.default_rng(int(keyed(secret, "verify-seed-pool", task)[:16], 16))
    out: list[int] = []
    while len(out) < size:
        s = int(rng.integers(SEED_POOL_LOW, SEED_POOL_HIGH))
        if s not in out:
            out.append(s)
    return tuple(out)


def draw_seeds(secret: bytes, task: str, result_id: int, k: int) -> tuple[int, ...]:
    """``k`` distinct verification seeds for one result, from the task's secret pool
    (:func:`seed_pool`): consecutive results take consecutive runs of the pool's secret order, so no two
    of any ``SEED_POOL_SIZE // k`` consecutive results share a seed, and every seed's trusted artefacts
    are reused by later results."""
    pool = seed_pool(secret, task, max(SEED_POOL_SIZE, k))
    start = (result_id * k) % len(pool)
    return tuple(pool[(start + j) % len(pool)] for j in range(k))


def dev_vector(ev: EvalTask, predictions: Mapping[str, float]) -> np.ndarray | None:
    """Predictions in the task's dev order (float64), or ``None`` when some dev item has none."""
    try:
        return np.array([predictions[it.id] for it in ev.dev_items], dtype=np.float64)
    except KeyError:
        return None


def release_dev(
    session: Session, ev: EvalTask, agent_id: int, vector: np.ndarray, step: float
) -> float | None:
    """The result Ladder: the rounded dev score to release for a new verified result of ``agent_id``,
    or ``None`` when it does not beat the agent's best released result by a paired standard error."""
    best = session.scalars(
        select(VerifiedScore)
        .join(Result, Result.id == VerifiedScore.result_id)
        .where(
            Result.agent_id == agent_id,
            VerifiedScore.task == ev.name,
            VerifiedScore.released_dev.is_not(None),
            VerifiedScore.dev_predictions.is_not(None),
        )
        .order_by(VerifiedScore.released_dev.desc(), VerifiedScore.id)
    ).first()
    best_vec = None
    if best is not None and best.dev_predictions is not None:
        best_vec = np.frombuffer(best.dev_predictions, dtype=np.float32).astype(np.float64)
        if len(best_vec) != len(vector):
            best_vec = None
    decision = ladder_step(
        ev.dev.labels,
        vector.astype(np.float32).astype(np.float64),
        best_vec,
        None if best_vec is None or best is None else best.released_dev,
        step,
    )
    return decision.reported if decision.improved else None


def revealed(session: Session, task: str) -> bool:
    """Has an overseer revealed the task's private (sealed) board?"""
    return session.scalar(select(Reveal.id).where(Reveal.task == task)) is not None


def sees_private(viewer: Agent, session: Session, task: str) -> bool:
    """Overseers always see sealed figures; agents only after the task's final reveal."""
    return viewer.role == "overseer" or revealed(session, task)

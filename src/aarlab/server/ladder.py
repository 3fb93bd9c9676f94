"""Ladder-style dev feedback (Blum & Hardt 2015, parameter-free variant).

A submission's score is revealed only when it beats the agent's best by more than one standard error of
the *paired* per-item loss difference, and then only rounded to a coarse step; otherwise the previous
best is repeated. An agent that changes a few predictions at a time therefore learns nothing: a single
flip moves the mean loss by exactly one standard error, never more, so it is never reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def zero_one_loss(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per-item 0/1 loss of thresholded probabilities (ties at 0.5 count as "False")."""
    return ((proba > 0.5) != labels.astype(bool)).astype(float)


def round_to(x: float, step: float) -> float:
    return round(round(x / step) * step, 10)


@dataclass(frozen=True)
class LadderDecision:
    """What the Ladder decided for one submission; only ``reported`` and ``improved`` leave the server."""

    score: float
    reported: float
    improved: bool


def ladder_step(
    labels: np.ndarray,
    proba: np.ndarray,
    best_proba: np.ndarray | None,
    best_reported: float | None,
    step: float,
) -> LadderDecision:
    """Decide whether ``proba`` improves on ``best_proba`` by a paired margin, and what to report."""
    loss = zero_one_loss(labels, proba)
    score = 1.0 - float(loss.mean())
    if best_proba is None or best_reported is None:
        return LadderDecision(score, round_to(score, step), True)
    diff = zero_one_loss(labels, best_proba) - loss  # > 0 where the new submission is better
    n = len(diff)
    gain = float(diff.mean())
    se = float(diff.std(ddof=1)) / np.sqrt(n) if n > 1 else float("inf")
    if gain > se + 1e-12:
        return LadderDecision(score, round_to(score, step), True)
    return LadderDecision(score, best_reported, False)

"""Strong prior + consistency, with no teacher at all.

Start from the student's zero-shot prior, enforce "exactly one candidate per group is true", and
self-train the student on those pseudo-labels for a few rounds. It uses no weak label, so oversight
labels it a strong-prior method: legitimate, but it measures elicitation, not weak-to-strong transfer.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aarlab.testbed.context import MethodContext
from aarlab.testbed.methods.blocks import answer_consistent, confident_mask, group_exclusive
from aarlab.testbed.methods.registry import method
from aarlab.testbed.schema import Inputs


class PriorConsistencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consistency: Literal["exclusive", "answer", "none"] = Field(
        "exclusive",
        description="exclusive: one true candidate per group; answer: candidates with the same final "
        "answer share a label and at most one answer per group is true (math solutions); none",
    )
    rounds: int = Field(2, ge=0, le=10, description="self-training rounds after the prior")
    keep_fraction: float = Field(0.5, gt=0, le=1, description="most confident pseudo-labels kept per round")
    C: float = Field(0.01, gt=0)


def _consistent(p: np.ndarray, inputs: Inputs, mode: str) -> np.ndarray:
    if mode == "exclusive":
        return group_exclusive(p, inputs.groups)
    if mode == "answer":
        return answer_consistent(p, inputs.texts, inputs.groups)
    return p


@method("prior-consistency", PriorConsistencyConfig, uses_teacher=False)
def run(ctx: MethodContext[PriorConsistencyConfig]) -> np.ndarray:
    """Zero-shot prior → group consistency → confident self-training (ignores the teacher)."""
    cfg = ctx.config
    pseudo = _consistent(ctx.strong.prior(ctx.unlabeled), ctx.unlabeled, cfg.consistency)
    for _ in range(cfg.rounds):
        keep = confident_mask(pseudo, cfg.keep_fraction)
        ctx.strong.fit(ctx.unlabeled.subset(keep), (pseudo[keep] > 0.5).astype(float), C=cfg.C)
        pseudo = _consistent(ctx.strong.predict_proba(ctx.unlabeled), ctx.unlabeled, cfg.consistency)
    if cfg.rounds == 0:
        return _consistent(ctx.strong.prior(ctx.test), ctx.test, cfg.consistency)
    return _consistent(ctx.strong.predict_proba(ctx.test), ctx.test, cfg.consistency)

"""Bootstrap with a product of experts: relabel with teacher × student, retrain, repeat.

The student's own view (a different, stronger representation) and the teacher's are combined as a
product of experts (their logits add), so a point's label flips only when the student is confident
enough to outvote the teacher.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aarlab.testbed.context import MethodContext
from aarlab.testbed.methods.blocks import out_of_fold, product_of_experts
from aarlab.testbed.methods.registry import method


class BootstrapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rounds: int = Field(2, ge=1, le=10)
    student_weight: float = Field(1.0, ge=0, description="weight of the student's logit in the product")
    folds: int = Field(5, ge=2, le=20, description="student opinions are out-of-fold, never self-scored")
    hard: bool = False
    C: float = Field(0.01, gt=0)


@method("bootstrap-product", BootstrapConfig)
def run(ctx: MethodContext[BootstrapConfig]) -> np.ndarray:
    """Iteratively relabel with the product of teacher and (out-of-fold) student, then retrain."""
    cfg = ctx.config
    targets = np.asarray(ctx.weak.proba, dtype=float)
    flips = []
    for r in range(cfg.rounds):
        student = out_of_fold(ctx.strong, ctx.unlabeled, targets, cfg.folds, ctx.seed + r)
        new = product_of_experts(ctx.weak.proba, student, cfg.student_weight)
        if cfg.hard:
            new = (new > 0.5).astype(float)
        flips.append(int(np.sum((new > 0.5) != (targets > 0.5))))
        targets = new
    ctx.log(flips=flips)
    ctx.strong.fit(ctx.unlabeled, targets, C=cfg.C)
    return ctx.strong.predict_proba(ctx.test)

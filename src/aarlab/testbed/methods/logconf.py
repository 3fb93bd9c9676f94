"""Auxiliary confidence loss (Burns et al. 2023): let the student trust itself more as training goes.

Loss = (1 − α)·CE(teacher) + α·CE(student's own hardened predictions). Cross-entropy is linear in the
target, so each round is exactly a fit on the mixed soft target (1 − α)·p_weak + α·hard(p_student).
α warms up linearly from 0 to ``alpha_max`` over ``warmup`` rounds; hardening uses an adaptive threshold
that keeps the teacher's positive rate, as in the paper.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aarlab.testbed.context import MethodContext
from aarlab.testbed.methods.blocks import adaptive_hard
from aarlab.testbed.methods.registry import method


class LogConfConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha_max: float = Field(0.75, ge=0, le=1)
    rounds: int = Field(6, ge=1, le=50)
    warmup: int = Field(3, ge=1, description="rounds over which α ramps from 0 to alpha_max")
    C: float = Field(0.01, gt=0)


def alpha_schedule(rounds: int, warmup: int, alpha_max: float) -> list[float]:
    """α per round: 0 at the first round, reaching alpha_max after ``warmup`` rounds."""
    return [alpha_max * min(1.0, r / warmup) for r in range(rounds)]


@method("logconf", LogConfConfig)
def run(ctx: MethodContext[LogConfConfig]) -> np.ndarray:
    """Auxiliary confidence loss with a warm-up that ramps α from 0 to alpha_max."""
    cfg = ctx.config
    alphas = alpha_schedule(cfg.rounds, cfg.warmup, cfg.alpha_max)
    rate = float(np.mean(ctx.weak.hard))
    student = np.asarray(ctx.weak.proba, dtype=float)
    for alpha in alphas:
        targets = (1 - alpha) * ctx.weak.proba + alpha * adaptive_hard(student, rate)
        ctx.strong.fit(ctx.unlabeled, targets, C=cfg.C)
        student = ctx.strong.predict_proba(ctx.unlabeled)
    ctx.log(alphas=alphas)
    return ctx.strong.predict_proba(ctx.test)

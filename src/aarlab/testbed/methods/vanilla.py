"""Vanilla weak-to-strong: train the strong student on the teacher's labels (Burns et al. 2023)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aarlab.testbed.context import MethodContext
from aarlab.testbed.methods.registry import method


class VanillaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    head: Literal["logistic", "mlp"] = "logistic"
    C: float = Field(0.01, gt=0, description="inverse regularisation strength of the probe head")


@method("vanilla-hard", VanillaConfig)
def run_hard(ctx: MethodContext[VanillaConfig]) -> np.ndarray:
    """Fit the student on the teacher's hard labels (argmax)."""
    ctx.strong.fit(ctx.unlabeled, ctx.weak.hard, head=ctx.config.head, C=ctx.config.C)
    return ctx.strong.predict_proba(ctx.test)


@method("vanilla-soft", VanillaConfig)
def run_soft(ctx: MethodContext[VanillaConfig]) -> np.ndarray:
    """Fit the student on the teacher's soft labels (its probabilities)."""
    ctx.strong.fit(ctx.unlabeled, ctx.weak.proba, head=ctx.config.head, C=ctx.config.C)
    return ctx.strong.predict_proba(ctx.test)


@method("vanilla", VanillaConfig)
def run_vanilla(ctx: MethodContext[VanillaConfig]) -> np.ndarray:
    """The reference baseline every report compares against (= vanilla-hard)."""
    return run_hard(ctx)

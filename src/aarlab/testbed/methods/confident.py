"""Confident-only: train only on the teacher's most confident labels, per predicted class."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aarlab.testbed.context import MethodContext
from aarlab.testbed.methods.blocks import confident_mask
from aarlab.testbed.methods.registry import method


class ConfidentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep_fraction: float = Field(0.5, gt=0, le=1, description="share of each predicted class kept")
    soft: bool = False
    C: float = Field(0.01, gt=0)


@method("confident", ConfidentConfig)
def run(ctx: MethodContext[ConfidentConfig]) -> np.ndarray:
    """Keep the most confident share of the teacher's labels per class; train on those."""
    keep = confident_mask(ctx.weak.proba, ctx.config.keep_fraction)
    targets = ctx.weak.proba if ctx.config.soft else ctx.weak.hard
    ctx.log(kept=int(keep.sum()))
    ctx.strong.fit(ctx.unlabeled.subset(keep), targets[keep], C=ctx.config.C)
    return ctx.strong.predict_proba(ctx.test)

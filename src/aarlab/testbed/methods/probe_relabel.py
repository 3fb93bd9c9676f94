"""Probe relabel / filter: let out-of-fold strong probes audit the teacher's labels.

Each unlabeled point gets a prediction from a student trained on the *other* folds' weak labels, never
on its own. ``relabel`` trains the final student on those out-of-fold predictions; ``filter`` drops the
points where the out-of-fold student confidently disagrees with the teacher.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aarlab.testbed.context import MethodContext
from aarlab.testbed.methods.blocks import out_of_fold
from aarlab.testbed.methods.registry import method


class ProbeRelabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["relabel", "filter"] = "filter"
    folds: int = Field(5, ge=2, le=20)
    margin: float = Field(
        0.2, ge=0, lt=0.5, description="filter: drop if OOF is this far past 0.5 the other way"
    )
    C: float = Field(0.01, gt=0)


@method("probe-relabel", ProbeRelabelConfig)
def run(ctx: MethodContext[ProbeRelabelConfig]) -> np.ndarray:
    """Out-of-fold strong probes relabel or filter the teacher's labels."""
    cfg = ctx.config
    weak_hard = ctx.weak.hard
    oof = out_of_fold(ctx.strong, ctx.unlabeled, weak_hard, cfg.folds, ctx.seed)
    if cfg.mode == "relabel":
        ctx.log(flipped=int(np.sum((oof > 0.5) != (weak_hard > 0.5))))
        ctx.strong.fit(ctx.unlabeled, oof, C=cfg.C)
    else:
        disagree = np.where(weak_hard > 0.5, oof < 0.5 - cfg.margin, oof > 0.5 + cfg.margin)
        keep = ~disagree
        ctx.log(dropped=int(disagree.sum()))
        ctx.strong.fit(ctx.unlabeled.subset(keep), weak_hard[keep], C=cfg.C)
    return ctx.strong.predict_proba(ctx.test)

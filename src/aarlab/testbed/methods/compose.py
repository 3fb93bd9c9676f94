"""``compose``: one method whose config composes the building blocks (the search researchers' space).

Stages, each optional and each a hyperparameter: teacher targets (hard / soft / sharpened), an
optional strong-prior mix, data selection (confident share per class), relabelling (out-of-fold
filter, out-of-fold relabel, product-of-experts bootstrap or noisy-channel EM), per-example confidence
weights, an auxiliary-confidence warm-up, the probe head and its regularisation, and test-time group
consistency. Every stage is label-free by construction; ``uses_teacher`` is true because the teacher
always feeds the first stage (a config may down-weight it, and oversight ablations will then say so).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aarlab.testbed.context import MethodContext
from aarlab.testbed.methods.blocks import (
    adaptive_hard,
    answer_consistent,
    confident_mask,
    group_exclusive,
    logit,
    out_of_fold,
    product_of_experts,
    sigmoid,
)
from aarlab.testbed.methods.registry import method


class ComposeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: Literal["hard", "soft", "sharpen"] = "soft"
    temperature: float = Field(0.5, gt=0, le=5, description="sharpen: teacher logits divided by this")
    prior_weight: float = Field(0.0, ge=0, le=3, description="add this × the strong prior's logit")
    keep_fraction: float = Field(1.0, gt=0, le=1, description="confident share kept per class")
    relabel: Literal["none", "oof-filter", "oof-relabel", "product", "em"] = "none"
    folds: int = Field(4, ge=2, le=10)
    margin: float = Field(0.2, ge=0, lt=0.5)
    rounds: int = Field(2, ge=1, le=6)
    weighting: Literal["none", "confidence"] = "none"
    weight_power: float = Field(1.0, gt=0, le=4)
    aux_alpha: float = Field(0.0, ge=0, le=1, description="logconf: final weight of self-targets")
    aux_rounds: int = Field(4, ge=1, le=10)
    head: Literal["logistic", "mlp"] = "logistic"
    C: float = Field(0.01, gt=0, le=100)
    consistency: Literal["none", "exclusive", "answer"] = "none"


def noisy_channel_em(
    ctx: MethodContext[ComposeConfig], targets: np.ndarray, rounds: int, folds: int
) -> np.ndarray:
    """EM with a class-conditional noise model of the teacher: P(weak | true) is estimated from the
    student's out-of-fold beliefs, and the posterior over the true label becomes the new target."""
    weak = (targets > 0.5).astype(float)
    post = targets.copy()
    for r in range(rounds):
        student = out_of_fold(ctx.strong, ctx.unlabeled, post, folds, ctx.seed + r)
        # M-step: flip rates of the teacher given the (soft) true label
        eps = 1e-3
        p_w1_t1 = (np.sum(student * weak) + eps) / (np.sum(student) + 2 * eps)
        p_w1_t0 = (np.sum((1 - student) * weak) + eps) / (np.sum(1 - student) + 2 * eps)
        # E-step: posterior of the true label given the teacher's label and the student's belief
        lik1 = np.where(weak > 0.5, p_w1_t1, 1 - p_w1_t1)
        lik0 = np.where(weak > 0.5, p_w1_t0, 1 - p_w1_t0)
        s = np.clip(student, 1e-4, 1 - 1e-4)
        num = lik1 * s  # the student's belief already carries the class prior
        post = num / (num + lik0 * (1 - s))
    return post


@method("compose", ComposeConfig)
def run(ctx: MethodContext[ComposeConfig]) -> np.ndarray:
    """A configurable composition of the label-free building blocks."""
    cfg = ctx.config
    p = np.asarray(ctx.weak.proba, dtype=float)
    if cfg.targets == "hard":
        targets = (p > 0.5).astype(float)
    elif cfg.targets == "sharpen":
        targets = sigmoid(logit(p) / cfg.temperature)
    else:
        targets = p.copy()
    if cfg.prior_weight > 0:
        targets = product_of_experts(targets, ctx.strong.prior(ctx.unlabeled), cfg.prior_weight)
    inputs = ctx.unlabeled
    keep = (
        confident_mask(targets, cfg.keep_fraction) if cfg.keep_fraction < 1 else np.ones(len(p), dtype=bool)
    )
    if cfg.relabel == "oof-filter":
        oof = out_of_fold(ctx.strong, inputs, targets, cfg.folds, ctx.seed)
        keep &= ~np.where(targets > 0.5, oof < 0.5 - cfg.margin, oof > 0.5 + cfg.margin)
    elif cfg.relabel == "oof-relabel":
        targets = out_of_fold(ctx.strong, inputs, targets, cfg.folds, ctx.seed)
    elif cfg.relabel == "product":
        for r in range(cfg.rounds):
            targets = product_of_experts(p, out_of_fold(ctx.strong, inputs, targets, cfg.folds, ctx.seed + r))
    elif cfg.relabel == "em":
        targets = noisy_channel_em(ctx, targets, cfg.rounds, cfg.folds)
    if keep.sum() < 10:  # never train on (almost) nothing: fall back to all points
        keep = np.ones(len(p), dtype=bool)
    weights = np.abs(2 * targets - 1) ** cfg.weight_power + 1e-3 if cfg.weighting == "confidence" else None
    sub, t_sub = inputs.subset(keep), targets[keep]
    w_sub = None if weights is None else weights[keep]
    ctx.strong.fit(sub, t_sub, w_sub, head=cfg.head, C=cfg.C)
    if cfg.aux_alpha > 0:
        rate = float(np.mean(t_sub > 0.5))
        for r in range(1, cfg.aux_rounds + 1):
            alpha = cfg.aux_alpha * r / cfg.aux_rounds
            student = ctx.strong.predict_proba(sub)
            ctx.strong.fit(
                sub, (1 - alpha) * t_sub + alpha * adaptive_hard(student, rate), w_sub, head=cfg.head, C=cfg.C
            )
    ctx.log(
        kept=int(keep.sum()), agreement=float(np.mean((ctx.strong.predict_proba(inputs) > 0.5) == (p > 0.5)))
    )
    out = ctx.strong.predict_proba(ctx.test)
    if cfg.consistency == "exclusive":
        out = group_exclusive(out, ctx.test.groups)
    elif cfg.consistency == "answer":
        out = answer_consistent(out, ctx.test.texts, ctx.test.groups)
    return out

"""Label-free building blocks that methods compose (and that search researchers recombine).

Each block takes and returns plain arrays of probabilities so they compose freely; none of them can see
a label because none is ever passed in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from aarlab.testbed.models import StudentModel
from aarlab.testbed.schema import Inputs

EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def confident_mask(proba: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Keep the most confident ``keep_fraction`` of points *per predicted class*.

    Per class, so that a teacher biased towards one class does not make the kept set even more biased.
    """
    proba = np.asarray(proba, dtype=float)
    conf = np.abs(proba - 0.5)
    mask = np.zeros(len(proba), dtype=bool)
    for cls in (proba > 0.5, proba <= 0.5):
        idx = np.flatnonzero(cls)
        if len(idx) == 0:
            continue
        k = max(1, round(keep_fraction * len(idx)))
        mask[idx[np.argsort(-conf[idx], kind="stable")[:k]]] = True
    return mask


def product_of_experts(p: np.ndarray, q: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """Normalised product p·q^w: combines two independent opinions (logits add)."""
    return sigmoid(logit(p) + weight * logit(q))


def adaptive_hard(proba: np.ndarray, positive_rate: float) -> np.ndarray:
    """Hard labels thresholded at the quantile that yields ``positive_rate`` positives (Burns et al.)."""
    proba = np.asarray(proba, dtype=float)
    if len(proba) == 0:
        return proba
    thr = np.quantile(proba, 1 - positive_rate)
    return (proba >= thr).astype(float) if 0 < positive_rate < 1 else (proba > 0.5).astype(float)


def group_members(groups: Sequence[str | None]) -> dict[str, list[int]]:
    """Positions of each group's items, in item order (items without a group belong to none)."""
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        if g is not None:
            members.setdefault(g, []).append(i)
    return members


def group_exclusive(proba: np.ndarray, groups: Sequence[str | None], temperature: float = 1.0) -> np.ndarray:
    """Exactly-one-true consistency: softmax of logits within each group (singletons unchanged)."""
    proba = np.asarray(proba, dtype=float)
    out = proba.copy()
    members = group_members(groups)
    z = logit(proba) / temperature
    for idx in members.values():
        if len(idx) < 2:
            continue
        e = np.exp(z[idx] - z[idx].max())
        out[idx] = e / e.sum()
    return out


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_answer(text: str) -> str | None:
    """The last number of a text, normalised (``"A: 1,200.0"`` → ``"1200"``); None when it has none.

    Solutions end with their answer (GSM8K's ``A: <number>``), so candidates of one question that end in
    the same number claim the same answer.
    """
    found = _NUMBER.findall(text)
    if not found:
        return None
    num = found[-1].replace(",", "")
    if "." in num:
        num = num.rstrip("0").rstrip(".")
    return num or "0"


def answer_consistent(
    proba: np.ndarray, texts: Sequence[Sequence[str]], groups: Sequence[str | None]
) -> np.ndarray:
    """Logical consistency for candidates of one question (unsupervised elicitation, ICM-style).

    Within a group, candidates whose final answers (:func:`final_answer` of the last text) agree must
    share a label, so each gets its answer cluster's mean probability; and at most one answer can be
    right, so every cluster but the most probable one is capped at 1 − that cluster's probability.
    Candidates without a number, and groups of one, are unchanged. Shape: (n,) in, (n,) out.
    """
    proba = np.asarray(proba, dtype=float)
    out = proba.copy()
    members = group_members(groups)
    for idx in members.values():
        if len(idx) < 2:
            continue
        clusters: dict[str, list[int]] = {}
        for i in idx:
            ans = final_answer(texts[i][-1]) if texts[i] else None
            if ans is not None:
                clusters.setdefault(ans, []).append(i)
        if not clusters:
            continue
        means = {a: float(proba[m].mean()) for a, m in clusters.items()}
        top = max(means, key=lambda a: means[a])
        for a, m in clusters.items():
            out[m] = means[a] if a == top else min(means[a], 1.0 - means[top])
    return out


def out_of_fold(
    strong: StudentModel,
    inputs: Inputs,
    targets: np.ndarray,
    folds: int,
    seed: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Predictions for every point from a fresh student that never saw that point (K-fold).

    Groups stay within one fold, so candidates of one question cannot vouch for each other.
    """
    n = len(inputs)
    groups = [g if g is not None else f"#{i}" for i, g in enumerate(inputs.groups)]
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(uniq, rng.permutation(len(uniq)) % folds, strict=True))
    assign = np.array([fold_of[g] for g in groups])
    out = np.zeros(n)
    for k in range(folds):
        held = assign == k
        if not held.any() or held.all():
            continue
        model = strong.fresh().fit(
            inputs.subset(~held), targets[~held], None if weights is None else weights[~held]
        )
        out[held] = model.predict_proba(inputs.subset(held))
    return out

"""The ``embed`` model backend: a frozen encoder's features plus a trainable probe head.

This is what ``ctx.strong`` is for a method. The same interface (:class:`StudentModel`) is what other
backends (the ``lm`` backend) implement, so a method runs unchanged on any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from aarlab.testbed.blas import limit_blas_threads
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.schema import Inputs, Item

HeadName = Literal["logistic", "mlp"]


class StudentModel(Protocol):
    """What a method may do with the strong student (and nothing that reaches a label)."""

    def fit(
        self, inputs: Inputs, targets: np.ndarray, weights: np.ndarray | None = None, **head: Any
    ) -> StudentModel: ...

    def predict_proba(self, inputs: Inputs) -> np.ndarray: ...

    def features(self, inputs: Inputs) -> np.ndarray: ...

    def prior(self, inputs: Inputs) -> np.ndarray: ...

    def fresh(self) -> StudentModel: ...


class FeatureTable:
    """Item features looked up by the item's texts (stable across seeds and splits)."""

    def __init__(self, encoder_id: str, items: Sequence[Item], matrix: np.ndarray) -> None:
        self.encoder_id = encoder_id
        self.matrix = matrix
        self._row = {it.texts: i for i, it in enumerate(items)}

    def rows(self, inputs: Inputs | Sequence[Item]) -> np.ndarray:
        try:
            idx = [self._row[it.texts] for it in inputs]
        except KeyError:
            raise AarlabError(
                f"an input is not part of this task, so {self.encoder_id} has no features for it; "
                "methods may only use ctx.unlabeled and ctx.test inputs (or subsets of them)"
            ) from None
        return self.matrix[idx]


def soft_fit_arrays(
    X: np.ndarray, targets: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact soft-label cross-entropy for sklearn: each point appears as class 1 with weight w·p and as
    class 0 with weight w·(1−p), so CE(p, q) = p·CE(1, q) + (1−p)·CE(0, q) is minimised unchanged."""
    t = np.clip(np.asarray(targets, dtype=float), 0.0, 1.0)
    w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=float)
    Xd = np.concatenate([X, X])
    yd = np.concatenate([np.ones(len(t), dtype=int), np.zeros(len(t), dtype=int)])
    wd = np.concatenate([w * t, w * (1 - t)])
    keep = wd > 0
    return Xd[keep], yd[keep], wd[keep]


@dataclass
class ProbeHead:
    """Standardise + logistic regression (default) or a small MLP, trained on soft targets."""

    head: HeadName = "logistic"
    C: float = 0.01
    hidden: int = 128
    max_iter: int = 500
    seed: int = 0
    _scaler: StandardScaler | None = field(default=None, repr=False)
    _clf: Any = field(default=None, repr=False)
    _const: float | None = field(default=None, repr=False)

    def fit(self, X: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None) -> ProbeHead:
        if len(X) != len(targets):
            raise AarlabError(f"fit got {len(X)} inputs but {len(targets)} targets")
        if weights is not None and len(weights) != len(targets):
            raise AarlabError(f"fit got {len(targets)} targets but {len(weights)} weights")
        t = np.asarray(targets, dtype=float)
        if not np.all(np.isfinite(t)) or t.min(initial=0) < 0 or t.max(initial=0) > 1:
            raise AarlabError("fit targets must be finite probabilities in [0, 1]")
        Xs, ys, ws = soft_fit_arrays(X, t, weights)
        limit_blas_threads()
        self._scaler = StandardScaler().fit(X)
        if len(np.unique(ys)) < 2:  # every target on one side: a constant predictor is the optimum
            self._const = float(ys[0]) if len(ys) else 0.5
            return self
        self._const = None
        Xs = self._scaler.transform(Xs)
        if self.head == "logistic":
            # newton-cg: ~10x faster than lbfgs here (768-d, strongly regularised), same optimum.
            self._clf = LogisticRegression(
                C=self.C, solver="newton-cg", max_iter=self.max_iter, random_state=self.seed
            )
        else:
            self._clf = MLPClassifier(
                hidden_layer_sizes=(self.hidden,),
                alpha=1.0 / self.C,
                max_iter=self.max_iter,
                early_stopping=False,
                random_state=self.seed,
            )
        self._clf.fit(Xs, ys, sample_weight=ws)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._const is not None:
            return np.full(len(X), self._const)
        if self._clf is None or self._scaler is None:
            raise AarlabError("predict_proba called before fit: train the model first (ctx.strong.fit)")
        return np.asarray(self._clf.predict_proba(self._scaler.transform(X))[:, 1], dtype=float)


class EmbedModel:
    """A frozen encoder (features looked up from a cache-backed table) with a trainable probe head."""

    def __init__(
        self,
        table: FeatureTable,
        prior_scores: dict[tuple[str, ...], float],
        seed: int,
        head: dict[str, Any] | None = None,
    ) -> None:
        self._table = table
        self._prior = prior_scores
        self._seed = seed
        self._head_defaults = dict(head or {})
        self._head: ProbeHead | None = None

    @property
    def encoder(self) -> str:
        return self._table.encoder_id

    def fit(
        self, inputs: Inputs, targets: np.ndarray, weights: np.ndarray | None = None, **head: Any
    ) -> EmbedModel:
        """Train a new head on (inputs, soft targets in [0, 1], optional per-example weights)."""
        opts = {**self._head_defaults, **head}
        self._head = ProbeHead(seed=self._seed, **opts).fit(self._table.rows(inputs), targets, weights)
        return self

    def predict_proba(self, inputs: Inputs) -> np.ndarray:
        if self._head is None:
            raise AarlabError("ctx.strong.predict_proba called before ctx.strong.fit")
        return self._head.predict_proba(self._table.rows(inputs))

    def features(self, inputs: Inputs) -> np.ndarray:
        """The frozen encoder's features (a copy: methods cannot corrupt the shared table)."""
        return np.array(self._table.rows(inputs), copy=True)

    def prior(self, inputs: Inputs) -> np.ndarray:
        """Zero-shot probability from the encoder alone (no labels, no teacher): see :func:`zero_shot`."""
        return np.array([self._prior[it.texts] for it in inputs], dtype=float)

    def fresh(self) -> EmbedModel:
        """An untrained model over the same frozen features (for ensembles, co-training, folds)."""
        return EmbedModel(self._table, self._prior, self._seed, self._head_defaults)


def zero_shot(
    text_vecs: np.ndarray, hyp_vecs: np.ndarray, items: Sequence[Item]
) -> dict[tuple[str, ...], float]:
    """Embedding zero-shot prior: cos(text, positive hypothesis) − cos(text, negative hypothesis).

    Scores are standardised over the task pool (label-free) and squashed, so the prior is centred at
    0.5; pairwise items compare their two texts' scores. Weak for sentence encoders, but honest: it is
    what the encoder knows without any label or teacher.

    A pair's prior is antisymmetric: its score difference is scaled (by its root mean square) but not
    centred, so the reversed pair's prior is exactly ``1 - p``. Centred at the pool's median, the
    complement written for a swapped pair differed from the reversed pair's own prior by a constant
    offset that a regression of logit(prior) on the features exposed (the swap bit; red team, stop 25).
    Pair order carries no meaning, so a pair's prior has no offset to centre.
    """

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

    raw = unit(text_vecs) @ unit(hyp_vecs).T
    score = raw[:, 0] - raw[:, 1]
    widths = {len(it.texts) for it in items}
    if widths == {1}:
        z = (score - np.median(score)) / (np.std(score) + 1e-12)
    else:
        diff = score[0::2] - score[1::2]
        z = diff / (np.sqrt(np.mean(diff**2)) + 1e-12)
    p = 1.0 / (1.0 + np.exp(-z))
    return {it.texts: float(v) for it, v in zip(items, p, strict=True)}

"""Accuracy, AUROC, PGR, and a bootstrap that respects the design (items × seeds) for their CIs.

PGR = (transfer − weak) / (ceiling − weak). It is reported as a ratio of seed means, which is far more
stable than a mean of per-seed ratios when the per-seed gap is small. A PGR is only meaningful when the
gap is resolvable: :func:`gap_resolvable` is the rule the whole project uses to refuse one.

**The design.** Seeds and evaluation items are *crossed*: a verification scores the same dev/sealed pool
on every seed, a reference-format directory has one fixed test set, and a built-in task's per-seed test
sets are overlapping draws from one pool. An item is therefore resampled *once* per bootstrap replicate
(its multiplicity is shared by every seed and every model that scored it: paired across seeds and
methods), and the seed level adds only the spread of the seed means themselves (:func:`design_weights`,
:func:`combine`). Identical seeds add nothing, so repeating a run never narrows an interval; resampling
each seed's items independently (the old scheme) shrank the item noise by 1/seeds even when all seeds
scored the same items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t
from sklearn.metrics import roc_auc_score


def accuracy(labels: np.ndarray, proba: np.ndarray) -> float:
    """Accuracy at threshold 0.5."""
    return float(np.mean((np.asarray(proba) > 0.5) == np.asarray(labels, dtype=bool)))


def auroc(labels: np.ndarray, proba: np.ndarray) -> float:
    """Area under the ROC curve (0.5 when only one class is present, where AUROC is undefined)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return 0.5
    return float(roc_auc_score(labels, proba))


def pgr(weak: float, ceiling: float, transfer: float) -> float:
    """Performance Gap Recovered; NaN when there is no gap to recover."""
    gap = ceiling - weak
    return float("nan") if gap == 0 else (transfer - weak) / gap


@dataclass(frozen=True)
class SeedPredictions:
    """Test labels and the three models' probabilities for one seed (kept out of any method's reach).

    ``ids`` names the test items (same order): items with the same id in several seeds are resampled
    together. Without ids every seed's items count as distinct items. ``ceiling_structured`` is the
    ceiling after the best structure-aware decoding the platform offers (groups), when the task has groups.
    """

    labels: np.ndarray
    weak: np.ndarray
    ceiling: np.ndarray
    transfer: np.ndarray
    ids: tuple[str, ...] | None = None
    ceiling_structured: np.ndarray | None = None


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class BootstrapSummary:
    """Point estimates (means over seeds) and 95% CIs from the design-respecting bootstrap.

    ``ceiling``/``gap``/``pgr`` use the plain ceiling (the gold-trained student, structure-blind). When the
    task has groups, ``ceiling_structured``/``gap_structured``/``pgr_structured`` use the ceiling after the
    platform's structure-aware decoding: a PGR against it cannot exceed 1 through decoding alone, so it is
    the figure to rank by (:attr:`pgr_rank`).
    """

    weak: Interval
    ceiling: Interval
    transfer: Interval
    gap: Interval
    pgr: Interval | None
    resolvable: bool
    ceiling_structured: Interval | None = None
    gap_structured: Interval | None = None
    pgr_structured: Interval | None = None

    @property
    def pgr_rank(self) -> Interval | None:
        """The PGR to rank by: against the structured ceiling when there is one, else the plain one."""
        return self.pgr_structured if self.ceiling_structured is not None else self.pgr


def _boot_auroc_counts(labels: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUROC of every bootstrap resample at once, given each item's multiplicity per resample.

    ``counts`` is (n_boot, n) multiplicities (integers), ``labels`` and ``proba`` are (n,); returns
    (n_boot,). Sort once; per resample, the Mann–Whitney U is the sum over positives of their count
    times the count of negatives ranked below them, a tied negative counting half. Those counts are
    read from one running sum over the negatives' columns alone: O(resamples × items), no per-resample
    sort, int32 counts and int64 sums (4–5× the form that summed over every column).
    """
    y = np.asarray(labels, dtype=bool)
    order = np.argsort(proba, kind="stable")
    ranked = np.asarray(proba)[order]
    yo = y[order]
    c = counts.astype(np.int32, copy=False)
    cum = np.zeros((c.shape[0], int((~yo).sum()) + 1), dtype=np.int32)
    np.cumsum(c[:, order[~yo]], axis=1, out=cum[:, 1:])  # cum[:, k]: the k lowest negatives' count
    pos_c = c[:, order[yo]]
    neg_upto = np.concatenate([[0], np.cumsum(~yo)])  # negatives among the first i ranked items
    first = np.ones(len(ranked), dtype=bool)
    first[1:] = ranked[1:] != ranked[:-1]
    group = (np.cumsum(first) - 1)[yo]  # each positive's rank group
    starts = np.flatnonzero(first)
    below = neg_upto[starts][group]  # negatives strictly below each positive
    upto = neg_upto[np.append(starts[1:], len(ranked))][group]  # ... and those tied with it
    if np.array_equal(below, upto):  # no positive ties a negative (a probe's scores almost never tie)
        u = np.einsum("ij,ij->i", pos_c, cum[:, below], dtype=np.int64).astype(float)
    else:
        twice = cum[:, below].astype(np.int64) + cum[:, upto]
        u = np.einsum("ij,ij->i", pos_c, twice, dtype=np.int64) / 2.0
    p, n = pos_c.sum(axis=1, dtype=np.int64), cum[:, -1].astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((p > 0) & (n > 0), u / (p * n), 0.5)


def resample_counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) multiplicities of each item in each bootstrap resample of size n."""
    idx = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n)


@dataclass(frozen=True)
class DesignWeights:
    """One bootstrap's replicate weights for a crossed items × seeds design.

    ``items[s]`` is the (n_boot, n_s) multiplicity of seed ``s``'s items (an item shared by several seeds
    has the same multiplicity in each); ``seeds`` is the (n_boot, S) seed resampling weights (sum 1).
    """

    items: list[np.ndarray]
    seeds: np.ndarray


def design_weights(
    ids: list[tuple[str, ...] | None], sizes: list[int], n_boot: int, rng: np.random.Generator
) -> DesignWeights:
    """Replicate weights that resample every distinct item once per replicate, and seeds on top.

    ``ids[s]`` names seed ``s``'s items (``None``: its items are distinct from every other seed's).
    """
    column: dict[tuple[int, str] | str, int] = {}
    index = []
    for s, (names, n) in enumerate(zip(ids, sizes, strict=True)):
        if names is not None and len(names) != n:
            raise ValueError(f"seed {s}: {len(names)} item ids for {n} items")
        keys: list[tuple[int, str] | str] = (
            [(s, str(i)) for i in range(n)] if names is None else list(names)
        )
        index.append(np.array([column.setdefault(k, len(column)) for k in keys], dtype=int))
    counts = resample_counts(rng, len(column), n_boot)
    S = len(sizes)
    seed_w = rng.multinomial(S, np.full(S, 1.0 / S), size=n_boot) / S
    return DesignWeights([counts[:, idx] for idx in index], seed_w)


#: Scale the seed part by t(0.975, S−1) / z(0.975) (few seeds: the seed variance is itself uncertain).
#: Measured by ``bench/coverage.py``; switch off there with ``--no-t``.
SEED_T_CORRECTION = True


def combine(per_seed: np.ndarray, point: np.ndarray, seed_w: np.ndarray) -> np.ndarray:
    """Replicates of the seed mean from per-seed item-resampled values and the seeds' own spread.

    ``per_seed`` is (..., n_boot, S): each seed's statistic under the replicate's item weights; ``point``
    is (..., S): each seed's statistic on the data; ``seed_w`` is (n_boot, S). A replicate is

    * the mean over seeds of ``per_seed`` (item noise; shared items move together), plus
    * the seed-resampled deviation of the seed means from their mean, shrunk so that it carries only the
      seed-to-seed variance *beyond* the item noise already in the first part: the spread of seed means
      s² contains item noise that differs between seeds (item × seed noise, and on a pool which items
      each seed tests) of size v = (mean_s Var(per_seed_s) − Var(mean_s per_seed_s))·S/(S−1), so the
      deviations are scaled to variance max(0, s² − v). With few seeds they are also scaled by
      √(S/(S−1))·t(0.975, S−1)/z(0.975).

    Identical seeds give s² = 0: no seed part, and the interval is the items' alone.
    """
    S = point.shape[-1]
    with np.errstate(invalid="ignore"):
        item_part = np.nanmean(per_seed, axis=-1)
    if S < 2:
        return np.asarray(item_part)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = (np.nanmean(np.nanvar(per_seed, axis=-2), axis=-1) - np.nanvar(item_part, axis=-1)) * S / (S - 1)
        s2 = np.var(point, axis=-1, ddof=1)
        shrink = np.sqrt(np.clip(np.where(s2 > 0, 1 - v / s2, 0.0), 0.0, 1.0))
    scale = np.sqrt(S / (S - 1))
    if SEED_T_CORRECTION:
        scale *= float(student_t.ppf(0.975, S - 1) / norm.ppf(0.975))
    dev = (point - point.mean(axis=-1, keepdims=True)) * shrink[..., None] * scale
    seed_part = np.einsum("bs,...s->...b", seed_w - 1.0 / S, dev)
    return np.asarray(item_part + seed_part)


def weighted_mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-replicate weighted mean of per-item values: (n_boot, n) weights with (n,) values give
    (n_boot,), with (n, K) values (K statistics at once) give (n_boot, K); NaN where a replicate gave
    every item weight zero."""
    total = weights.sum(axis=1)
    if values.ndim == 2:
        total = total[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (weights @ values) / np.maximum(total, 1), np.nan)


def bootstrap_all(
    seeds: list[SeedPredictions],
    n_boot: int = 1000,
    rng_seed: int = 0,
    metrics: tuple[str, ...] = ("accuracy", "auroc"),
) -> dict[str, BootstrapSummary]:
    """Accuracy and AUROC summaries from one shared bootstrap over the items × seeds design.

    Items shared across seeds (same id) are resampled once per replicate; seeds add only the spread of
    their means (see the module docstring). Sharing the resamples keeps the two metrics' CIs consistent.
    """
    rng = np.random.default_rng(rng_seed)
    S = len(seeds)
    structured = all(sp.ceiling_structured is not None for sp in seeds) and S > 0
    K = 4 if structured else 3
    dw = design_weights([sp.ids for sp in seeds], [len(sp.labels) for sp in seeds], n_boot, rng)
    unknown_metrics = set(metrics) - {"accuracy", "auroc"}
    if unknown_metrics:
        raise ValueError(f"unknown metric(s) {sorted(unknown_metrics)}; use 'accuracy' and/or 'auroc'")
    per = {m: np.zeros((K, n_boot, S)) for m in metrics}
    point = {m: np.zeros((K, S)) for m in metrics}
    for s, sp in enumerate(seeds):
        counts = dw.items[s]
        models = [sp.weak, sp.ceiling, sp.transfer]
        if structured:
            assert sp.ceiling_structured is not None
            models.append(sp.ceiling_structured)
        if "accuracy" in per:
            # every model's correctness in one (n_boot, n) @ (n, K) product
            correct = np.stack([(proba > 0.5) == sp.labels for proba in models], axis=1).astype(float)
            per["accuracy"][:, :, s] = weighted_mean(counts.astype(float), correct).T
            point["accuracy"][:, s] = correct.mean(axis=0)
        if "auroc" in per:
            # the point estimate is the same formula with every item once (what sklearn's
            # roc_auc_score gives, tests/test_metrics.py), at a fraction of its validation cost
            both = np.vstack([counts, np.ones((1, counts.shape[1]), dtype=counts.dtype)], dtype=np.int32)
            for k, proba in enumerate(models):
                per_point = _boot_auroc_counts(sp.labels, proba, both)
                per["auroc"][k, :, s], point["auroc"][k, s] = per_point[:-1], per_point[-1]
    return {m: _summarise(combine(per[m], point[m], dw.seeds), point[m].mean(axis=1)) for m in per}


def accuracy_interval(
    labels: list[np.ndarray],
    preds: list[np.ndarray],
    ids: list[tuple[str, ...]] | None = None,
    n_boot: int = 1000,
    rng_seed: int = 0,
) -> Interval:
    """Mean accuracy over seeds with its 95% CI over the items × seeds design (one model only)."""
    rng = np.random.default_rng(rng_seed)
    names = ids if ids is not None else [None] * len(labels)
    dw = design_weights(list(names), [len(y) for y in labels], n_boot, rng)
    per = np.zeros((n_boot, len(labels)))
    point = np.zeros(len(labels))
    for s, (y, p) in enumerate(zip(labels, preds, strict=True)):
        correct = ((np.asarray(p) > 0.5) == np.asarray(y, dtype=bool)).astype(float)
        per[:, s] = weighted_mean(dw.items[s], correct)
        point[s] = correct.mean()
    boot = combine(per, point, dw.seeds)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return Interval(float(point.mean()), float(lo), float(hi))


def bootstrap(
    seeds: list[SeedPredictions], metric: str = "accuracy", n_boot: int = 1000, rng_seed: int = 0
) -> BootstrapSummary:
    """One metric's summary (see :func:`bootstrap_all`)."""
    return bootstrap_all(seeds, n_boot, rng_seed)[metric]


def _summarise(boot: np.ndarray, means: np.ndarray) -> BootstrapSummary:
    def iv(mean: float, samples: np.ndarray) -> Interval:
        lo, hi = np.nanpercentile(samples, [2.5, 97.5])
        return Interval(float(mean), float(lo), float(hi))

    def gap_and_pgr(c: int) -> tuple[Interval, Interval | None]:
        gap_s = boot[c] - boot[0]
        gap = iv(float(means[c] - means[0]), gap_s)
        if not gap_resolvable(gap):
            return gap, None
        with np.errstate(divide="ignore", invalid="ignore"):
            pgr_s = (boot[2] - boot[0]) / gap_s
        return gap, iv(pgr(means[0], means[c], means[2]), pgr_s)

    gap, pgr_iv = gap_and_pgr(1)
    structured = len(means) > 3
    gap_st, pgr_st = gap_and_pgr(3) if structured else (None, None)
    return BootstrapSummary(
        weak=iv(float(means[0]), boot[0]),
        ceiling=iv(float(means[1]), boot[1]),
        transfer=iv(float(means[2]), boot[2]),
        gap=gap,
        pgr=pgr_iv,
        resolvable=pgr_iv is not None,
        ceiling_structured=iv(float(means[3]), boot[3]) if structured else None,
        gap_structured=gap_st,
        pgr_structured=pgr_st,
    )


def gap_resolvable(gap: Interval) -> bool:
    """Is ceiling − weak outside the noise? Its 95% CI must exclude zero by at least half its mean.

    Requiring ``low ≥ mean/2`` means the PGR's denominator is known to within a factor of about two; a
    gap that merely excludes zero can still make PGR swing by an order of magnitude.
    """
    return gap.mean > 0 and gap.low > 0 and gap.low >= gap.mean / 2

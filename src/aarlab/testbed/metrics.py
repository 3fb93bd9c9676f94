"""Accuracy, AUROC, PGR, and a two-level bootstrap (seeds × test examples) for their CIs.

PGR = (transfer − weak) / (ceiling − weak). It is reported as a ratio of seed means, which is far more
stable than a mean of per-seed ratios when the per-seed gap is small. A PGR is only meaningful when the
gap is resolvable: :func:`gap_resolvable` is the rule the whole project uses to refuse one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
    """Test labels and the three models' probabilities for one seed (kept out of any method's reach)."""

    labels: np.ndarray
    weak: np.ndarray
    ceiling: np.ndarray
    transfer: np.ndarray


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class BootstrapSummary:
    """Point estimates (means over seeds) and 95% CIs from the two-level bootstrap."""

    weak: Interval
    ceiling: Interval
    transfer: Interval
    gap: Interval
    pgr: Interval | None
    resolvable: bool


def _boot_auroc_counts(labels: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUROC of every bootstrap resample at once, given each item's multiplicity per resample.

    Sort once; per resample, the Mann–Whitney U is the count-weighted number of (positive, negative)
    pairs in order, ties counted half. O(resamples × items) with no per-resample sort.
    """
    y = np.asarray(labels, dtype=bool)
    order = np.argsort(proba, kind="stable")
    _, starts = np.unique(np.asarray(proba)[order], return_index=True)
    c = counts[:, order].astype(float)
    pos_g = np.add.reduceat(c * y[order], starts, axis=1)
    neg_g = np.add.reduceat(c * ~y[order], starts, axis=1)
    below = np.cumsum(neg_g, axis=1) - neg_g
    u = (pos_g * (below + 0.5 * neg_g)).sum(axis=1)
    p, n = pos_g.sum(axis=1), neg_g.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((p > 0) & (n > 0), u / (p * n), 0.5)


def resample_counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) multiplicities of each item in each bootstrap resample of size n."""
    idx = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n)


def bootstrap_all(
    seeds: list[SeedPredictions], n_boot: int = 1000, rng_seed: int = 0
) -> dict[str, BootstrapSummary]:
    """Accuracy and AUROC summaries from one shared two-level bootstrap (seeds, then test examples).

    Sharing the resamples keeps the two metrics' CIs consistent and halves the cost.
    """
    rng = np.random.default_rng(rng_seed)
    S = len(seeds)
    per = {m: np.zeros((3, n_boot, S)) for m in ("accuracy", "auroc")}
    point = {m: np.zeros((3, S)) for m in ("accuracy", "auroc")}
    for s, sp in enumerate(seeds):
        n = len(sp.labels)
        counts = resample_counts(rng, n, n_boot)
        for k, proba in enumerate((sp.weak, sp.ceiling, sp.transfer)):
            correct = ((proba > 0.5) == sp.labels).astype(float)
            per["accuracy"][k, :, s] = counts @ correct / n
            point["accuracy"][k, s] = correct.mean()
            per["auroc"][k, :, s] = _boot_auroc_counts(sp.labels, proba, counts)
            point["auroc"][k, s] = auroc(sp.labels, proba)
    seed_w = rng.multinomial(S, np.full(S, 1.0 / S), size=n_boot) / S  # seed resampling weights
    return {m: _summarise((per[m] * seed_w[None]).sum(axis=2), point[m].mean(axis=1)) for m in per}


def bootstrap(
    seeds: list[SeedPredictions], metric: str = "accuracy", n_boot: int = 1000, rng_seed: int = 0
) -> BootstrapSummary:
    """One metric's summary (see :func:`bootstrap_all`)."""
    return bootstrap_all(seeds, n_boot, rng_seed)[metric]


def _summarise(boot: np.ndarray, means: np.ndarray) -> BootstrapSummary:
    def iv(mean: float, samples: np.ndarray) -> Interval:
        lo, hi = np.nanpercentile(samples, [2.5, 97.5])
        return Interval(float(mean), float(lo), float(hi))

    gap_s = boot[1] - boot[0]
    gap = iv(float(means[1] - means[0]), gap_s)
    ok = gap_resolvable(gap)
    pgr_iv = None
    if ok:
        with np.errstate(divide="ignore", invalid="ignore"):
            pgr_s = (boot[2] - boot[0]) / gap_s
        pgr_iv = iv(pgr(means[0], means[1], means[2]), pgr_s)
    return BootstrapSummary(
        weak=iv(float(means[0]), boot[0]),
        ceiling=iv(float(means[1]), boot[1]),
        transfer=iv(float(means[2]), boot[2]),
        gap=gap,
        pgr=pgr_iv,
        resolvable=ok,
    )


def gap_resolvable(gap: Interval) -> bool:
    """Is ceiling − weak outside the noise? Its 95% CI must exclude zero by at least half its mean.

    Requiring ``low ≥ mean/2`` means the PGR's denominator is known to within a factor of about two; a
    gap that merely excludes zero can still make PGR swing by an order of magnitude.
    """
    return gap.mean > 0 and gap.low > 0 and gap.low >= gap.mean / 2

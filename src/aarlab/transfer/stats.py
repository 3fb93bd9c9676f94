"""Paired statistics for ΔPGR: bootstrap over the items × seeds design, one-sided tests, Holm, power.

ΔPGR(method vs baseline) on one suite = (acc_method − acc_baseline) / (acc_ceiling − acc_weak), with
weak, ceiling and both methods evaluated on the same seeds and the same test items, so every bootstrap
resample is *paired*: the same items and seeds for all four models. A suite's per-seed test sets are
overlapping draws from one pool, so an item (``ids``) is resampled once per replicate across all seeds
(:func:`aarlab.testbed.metrics.design_weights`); seeds add only the spread of their own means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from aarlab.testbed.metrics import combine, design_weights, weighted_mean


@dataclass(frozen=True)
class PairedSeed:
    """One seed of one suite: test labels and four models' probabilities on the same items."""

    labels: np.ndarray
    weak: np.ndarray
    ceiling: np.ndarray
    baseline: np.ndarray
    method: np.ndarray
    #: Item identities (same order); items shared by several seeds are resampled together.
    ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DeltaEstimate:
    """ΔPGR with its bootstrap distribution summary."""

    delta: float
    low: float
    high: float
    se: float
    pgr_method: float
    pgr_baseline: float
    gap: float
    gap_low: float
    samples: np.ndarray

    def p_value(self, min_effect: float) -> float:
        """One-sided p for H0: ΔPGR ≤ min_effect (bootstrap distribution shifted to the null)."""
        shifted = self.samples - self.delta + min_effect
        return float((1 + np.sum(shifted >= self.delta)) / (len(self.samples) + 1))

    def power(self, effect: float, min_effect: float, alpha: float) -> float:
        """Normal-approximation power to detect ΔPGR = ``effect`` at one-sided level ``alpha``."""
        if self.se <= 0:
            return 1.0 if effect > min_effect else 0.0
        return float(norm.cdf((effect - min_effect) / self.se - norm.ppf(1 - alpha)))


def paired_delta(seeds: list[PairedSeed], n_boot: int = 2000, rng_seed: int = 0) -> DeltaEstimate:
    """Paired bootstrap (items once per replicate, seeds on top) of ΔPGR and both PGRs."""
    rng = np.random.default_rng(rng_seed)
    S = len(seeds)
    dw = design_weights([sp.ids for sp in seeds], [len(sp.labels) for sp in seeds], n_boot, rng)
    per = np.zeros((4, n_boot, S))
    point = np.zeros((4, S))
    for s, sp in enumerate(seeds):
        for k, p in enumerate((sp.weak, sp.ceiling, sp.baseline, sp.method)):
            correct = ((p > 0.5) == sp.labels).astype(float)
            per[k, :, s] = weighted_mean(dw.items[s], correct)
            point[k, s] = correct.mean()
    boot = combine(per, point, dw.seeds)
    weak, ceil, base, meth = point.mean(axis=1)
    gap_b = boot[1] - boot[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta_b = (boot[3] - boot[2]) / gap_b
    delta_b = delta_b[np.isfinite(delta_b)]
    gap = ceil - weak
    lo, hi = np.percentile(delta_b, [2.5, 97.5]) if len(delta_b) else (float("nan"), float("nan"))
    return DeltaEstimate(
        delta=float((meth - base) / gap) if gap else float("nan"),
        low=float(lo),
        high=float(hi),
        se=float(np.std(delta_b)),
        pgr_method=float((meth - weak) / gap) if gap else float("nan"),
        pgr_baseline=float((base - weak) / gap) if gap else float("nan"),
        gap=float(gap),
        gap_low=float(np.percentile(gap_b, 2.5)),
        samples=delta_b,
    )


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone), in the input order."""
    m = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.zeros(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()

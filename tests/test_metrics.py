"""PGR arithmetic, the bootstrap, and the rule that refuses a PGR inside seed noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aarlab.testbed.metrics import Interval, SeedPredictions, accuracy, auroc, bootstrap, gap_resolvable, pgr


def test_pgr_arithmetic():
    assert pgr(0.6, 0.8, 0.7) == pytest.approx(0.5)
    assert pgr(0.6, 0.8, 0.8) == pytest.approx(1.0)
    assert pgr(0.6, 0.8, 0.6) == pytest.approx(0.0)
    assert pgr(0.6, 0.8, 0.5) == pytest.approx(-0.5)
    assert pgr(0.6, 0.8, 0.9) == pytest.approx(1.5)
    assert math.isnan(pgr(0.7, 0.7, 0.8))


def test_accuracy_and_auroc():
    y = np.array([1, 0, 1, 0], dtype=bool)
    assert accuracy(y, np.array([0.9, 0.1, 0.2, 0.4])) == 0.75
    assert auroc(y, np.array([0.9, 0.1, 0.8, 0.2])) == 1.0
    assert auroc(np.ones(3, dtype=bool), np.array([0.1, 0.2, 0.3])) == 0.5


def _seed(rng: np.random.Generator, n: int, accs: tuple[float, float, float]) -> SeedPredictions:
    labels = rng.random(n) > 0.5
    probs = []
    for a in accs:
        correct = rng.random(n) < a
        pred = np.where(correct, labels, ~labels)
        probs.append(np.where(pred, 0.8, 0.2))
    return SeedPredictions(labels, *probs)


def test_bootstrap_recovers_known_pgr():
    """A 95% interval misses the truth 1 time in 20 by design: over several simulated studies it must
    cover the true PGR almost every time (the coverage itself is measured in bench/coverage.py)."""
    covered = 0
    for k in range(6):
        rng = np.random.default_rng(k)
        seeds = [_seed(rng, 4000, (0.6, 0.8, 0.7)) for _ in range(5)]
        s = bootstrap(seeds)
        assert s.resolvable
        assert s.pgr is not None
        assert abs(s.pgr.mean - 0.5) < 0.06
        assert s.weak.low < s.weak.mean < s.weak.high
        covered += s.pgr.low < 0.5 < s.pgr.high
    assert covered >= 5


def test_no_pgr_when_gap_inside_noise():
    rng = np.random.default_rng(1)
    seeds = [_seed(rng, 150, (0.60, 0.61, 0.65)) for _ in range(3)]
    s = bootstrap(seeds)
    assert not s.resolvable
    assert s.pgr is None


def test_gap_rule():
    assert gap_resolvable(Interval(0.14, 0.12, 0.16))
    assert not gap_resolvable(Interval(0.05, 0.01, 0.09))  # excludes zero, but the ratio would be unstable
    assert not gap_resolvable(Interval(0.02, -0.01, 0.05))
    assert not gap_resolvable(Interval(-0.1, -0.2, -0.05))


def test_auroc_bootstrap_matches_sklearn():
    from aarlab.testbed.metrics import _boot_auroc_counts

    rng = np.random.default_rng(2)
    y = rng.random(300) > 0.4
    p = np.round(rng.random(300), 1)  # ties on purpose
    idx = rng.integers(0, 300, size=(5, 300))
    counts = np.stack([np.bincount(i, minlength=300) for i in idx])
    fast = _boot_auroc_counts(y, p, counts)
    slow = [auroc(y[i], p[i]) for i in idx]
    assert np.allclose(fast, slow)
    q = rng.random(300)  # no ties: the grouping pass is skipped, the figures must not change
    assert len(np.unique(q)) == 300
    assert np.allclose(_boot_auroc_counts(y, q, counts), [auroc(y[i], q[i]) for i in idx])
    one_class = np.zeros((1, 300), dtype=np.int64)
    one_class[0, np.flatnonzero(y)[:5]] = 1  # a resample of positives only: AUROC undefined, 0.5
    assert _boot_auroc_counts(y, q, one_class)[0] == 0.5

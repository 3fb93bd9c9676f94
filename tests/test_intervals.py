"""Intervals that respect the design: shared items are resampled once per replicate, seeds add only
what they really change, and a reference-format directory's seeds vary something real."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.testbed.loader import write_jsonl
from aarlab.testbed.metrics import SeedPredictions, accuracy_interval, bootstrap
from aarlab.testbed.pipeline import run_experiment
from aarlab.testbed.tasks import load_task


def _one_seed(rng: np.random.Generator, n: int) -> SeedPredictions:
    y = rng.random(n) > 0.5

    def model(acc: float) -> np.ndarray:
        right = rng.random(n) < acc
        return np.where(right == y, 0.8, 0.2)

    return SeedPredictions(y, model(0.6), model(0.85), model(0.72), ids=tuple(f"item-{i}" for i in range(n)))


def test_identical_seeds_do_not_narrow_the_interval():
    """20 copies of one seed (what fixed splits used to produce) carry the information of one seed."""
    sp = _one_seed(np.random.default_rng(0), 300)
    one, twenty = bootstrap([sp]), bootstrap([sp] * 20)
    for a, b in ((one.transfer, twenty.transfer), (one.gap, twenty.gap)):
        assert b.high - b.low == pytest.approx(a.high - a.low, rel=0.15)
    assert one.pgr is not None and twenty.pgr is not None
    assert twenty.pgr.high - twenty.pgr.low > 0.8 * (one.pgr.high - one.pgr.low)


def test_shared_items_are_paired_across_seeds_but_distinct_items_are_not():
    rng = np.random.default_rng(1)
    sp = _one_seed(rng, 200)
    shared = accuracy_interval([sp.labels] * 10, [sp.transfer] * 10, [sp.ids] * 10)  # type: ignore[list-item]
    distinct = accuracy_interval([sp.labels] * 10, [sp.transfer] * 10, None)
    assert (shared.high - shared.low) > 2.5 * (distinct.high - distinct.low)


def test_seed_spread_widens_the_interval():
    """Seeds that really differ (each model's accuracy moves by seed) add seed noise on top of items."""
    rng = np.random.default_rng(2)
    base = _one_seed(rng, 400)
    seeds = []
    for shift in (-0.08, -0.04, 0.0, 0.04, 0.08):
        t = base.transfer.copy()
        good = (t > 0.5) == base.labels
        pick = rng.choice(
            np.flatnonzero(good if shift < 0 else ~good), round(abs(shift) * len(t)), replace=False
        )
        t[pick] = 1 - t[pick]  # this seed is right on |shift| × n more (or fewer) items
        seeds.append(SeedPredictions(base.labels, base.weak, base.ceiling, t, ids=base.ids))
    same = bootstrap([base] * 5).transfer
    spread = bootstrap(seeds).transfer
    assert spread.high - spread.low > 1.2 * (same.high - same.low)


def _reference_dir(tmp_path, tiny_task, n_test: int = 30):  # type: ignore[no-untyped-def]
    """A reference-format directory cut from the tiny task: fixed splits, a 30-item test set."""
    recs = tiny_task.records
    rng = np.random.default_rng(0)
    order = rng.permutation(len(recs))
    test = [recs[i] for i in order[:n_test]]
    label = [recs[i] for i in order[n_test : n_test + 120]]
    unlabel = [recs[i] for i in order[n_test + 120 :]]
    d = tmp_path / "ref"
    write_jsonl(d / "train_label.jsonl", label)
    write_jsonl(d / "train_unlabel.jsonl", unlabel)
    write_jsonl(d / "test.jsonl", test)
    return d


def test_fixed_splits_seeds_vary_something_and_do_not_narrow_the_ci(tmp_path, tiny_task, tiny_prepared):  # type: ignore[no-untyped-def]
    """The issue's example: a 30-item test set with --seeds 20 reported 20 identical rows and a PGR
    interval that shrank with the seed count."""
    d = _reference_dir(tmp_path, tiny_task)
    task = load_task(str(d))
    one = run_experiment(task, "vanilla", seeds=1, show_progress=False).to_json()
    many = run_experiment(task, "vanilla", seeds=20, show_progress=False).to_json()
    rows = {(r["weak_acc"], r["ceiling_acc"], r["transfer_acc"]) for r in many["per_seed"]}
    assert len(rows) > 1, "every seed repeated the same run"
    assert "subsample" in many["seed_varies"] and "test set is fixed" in many["seed_varies"]
    w1 = one["transfer_acc_ci"][1] - one["transfer_acc_ci"][0]
    w20 = many["transfer_acc_ci"][1] - many["transfer_acc_ci"][0]
    # 30 test items: the interval stays about as wide as the items allow (it was ~1/√20 as wide)
    assert w20 > 0.6 * w1
    assert w20 > 0.15


def test_repeated_seeds_are_refused(tiny_task, tiny_prepared):  # type: ignore[no-untyped-def]
    from aarlab.testbed.errors import AarlabError

    with pytest.raises(AarlabError, match="distinct"):
        run_experiment(tiny_task, "vanilla", seeds=[1, 1, 2], prepared=tiny_prepared, show_progress=False)

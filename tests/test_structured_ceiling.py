"""A ceiling that compares like with like: where a task has groups, the ceiling also gets the platform's
structure-aware decoding (compose's ``consistency: exclusive``), and PGR is ranked against it."""

from __future__ import annotations

import numpy as np

from aarlab.testbed.methods.blocks import group_exclusive
from aarlab.testbed.metrics import SeedPredictions, bootstrap
from aarlab.testbed.pipeline import has_groups, run_experiment, structured_ceiling


def test_structured_ceiling_only_where_there_are_groups():
    p = np.array([0.6, 0.7, 0.2, 0.9])
    assert structured_ceiling(p, [None, None, None, None]) is None
    assert structured_ceiling(p, ["a", "b", "c", "d"]) is None  # singletons: nothing to decode
    out = structured_ceiling(p, ["a", "a", "b", "b"])
    assert out is not None and np.allclose(out, group_exclusive(p, ["a", "a", "b", "b"]))
    assert has_groups(["x", None, "x"]) and not has_groups([None, "y"])


def test_decoding_alone_cannot_push_the_ranked_pgr_above_one():
    """Simulated: a student that is the plain ceiling plus exclusive decoding has plain PGR > 1 but a
    PGR of exactly 1 against the structured ceiling."""
    rng = np.random.default_rng(0)
    n = 600
    groups = [f"g{i // 2}" for i in range(n)]
    y = np.zeros(n, dtype=bool)
    y[0::2] = rng.random(n // 2) > 0.5
    y[1::2] = ~y[0::2]  # exactly one true statement per group
    ceiling = np.clip(np.where(y, 0.65, 0.35) + rng.normal(0, 0.25, n), 0.01, 0.99)
    weak = np.clip(np.where(y, 0.58, 0.42) + rng.normal(0, 0.3, n), 0.01, 0.99)
    decoded = group_exclusive(ceiling, groups)
    ids = tuple(str(i) for i in range(n))
    sp = SeedPredictions(y, weak, ceiling, decoded, ids=ids, ceiling_structured=decoded)
    s = bootstrap([sp])
    assert s.pgr is not None and s.pgr.mean > 1.05  # plain: the decoding trick "beats" the ceiling
    assert s.pgr_structured is not None and abs(s.pgr_structured.mean - 1.0) < 1e-9
    assert s.pgr_rank is s.pgr_structured


def test_testbed_reports_plain_and_structured_figures_side_by_side(tiny_task, tiny_prepared):  # type: ignore[no-untyped-def]
    r = run_experiment(
        tiny_task,
        "compose",
        seeds=3,
        config={"consistency": "exclusive"},
        prepared=tiny_prepared,
        show_progress=False,
    ).to_json()
    assert r["ceiling_structured_acc"] is not None and r["ceiling_structured_acc"] >= r["ceiling_acc"]
    assert r["pgr_structured"] is not None and r["pgr_structured_ci"] is not None
    assert r["pgr_rank"] == r["pgr_structured"]
    assert r["pgr_structured_ci"][0] <= 1.0  # the structure trick is not significantly above 1
    if r["pgr"] is not None:
        assert r["pgr_structured"] < r["pgr"]

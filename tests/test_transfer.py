"""The transfer gate's statistics and verdict rule."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.transfer.gate import GateSettings, Suite, decide, evaluate
from aarlab.transfer.simulate import synthetic
from aarlab.transfer.stats import PairedSeed, holm, paired_delta


def test_holm_matches_textbook_example():
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5]


def _suite_data(rng: np.random.Generator, n: int = 800, seeds: int = 6) -> list[PairedSeed]:
    out = []
    for _ in range(seeds):
        y = rng.random(n) > 0.5

        def model(acc: float, y: np.ndarray = y) -> np.ndarray:
            ok = rng.random(n) < acc
            return np.where(np.where(ok, y, ~y), 0.8, 0.2)

        base = model(0.66)
        out.append(PairedSeed(y, model(0.6), model(0.8), base, base.copy()))
    return out


def test_paired_delta_recovers_known_effect():
    rng = np.random.default_rng(0)
    data = _suite_data(rng)
    null = paired_delta([synthetic(s, 0.0, 0.0, rng) for s in data], n_boot=500)
    assert null.delta == pytest.approx(0.0, abs=1e-9) and null.p_value(0.0) > 0.4
    eff = paired_delta([synthetic(s, 0.3, 0.0, rng) for s in data], n_boot=500)
    assert eff.delta == pytest.approx(0.3, abs=0.03)
    assert eff.p_value(0.0) < 0.01 and eff.low > 0.2
    assert eff.power(0.3, 0.0, 0.05) > 0.9


def _settings(names: list[str]) -> GateSettings:
    return GateSettings(suites=[Suite(name=n, task="t", weak="w", strong="s") for n in names], n_boot=500)


def test_verdicts():
    rng = np.random.default_rng(1)
    settings = _settings(["a", "b"])
    data = {"a": _suite_data(rng), "b": _suite_data(rng)}
    strong = {k: [synthetic(s, 0.4, 0.3, rng) for s in v] for k, v in data.items()}
    assert decide(settings, evaluate(settings, strong))[0] == "transfers"
    null = {k: [synthetic(s, 0.0, 0.3, rng) for s in v] for k, v in data.items()}
    verdict, reason = decide(settings, evaluate(settings, null))
    assert verdict == "does not transfer" and "power" in reason
    tiny = {k: v[:1] for k, v in null.items()}  # one seed, few items: cannot tell
    tiny = {
        k: [PairedSeed(s.labels[:40], s.weak[:40], s.ceiling[:40], s.baseline[:40], s.method[:40]) for s in v]
        for k, v in tiny.items()
    }
    assert decide(settings, evaluate(settings, tiny))[0] == "underpowered"


def test_unresolvable_suite_is_excluded_not_tested():
    rng = np.random.default_rng(2)
    settings = _settings(["flat"])
    y = rng.random(500) > 0.5
    same = np.where(rng.random(500) < 0.6, y, ~y).astype(float)
    flat = [PairedSeed(y, same, same.copy(), same.copy(), same.copy())]
    out = evaluate(settings, {"flat": flat})
    assert out[0].status == "excluded" and "not resolvable" in out[0].note
    assert decide(settings, out)[0] == "underpowered"


def test_a_suite_the_method_fails_on_is_never_waved_through() -> None:
    """An errored suite used to be skipped like an excluded one, so a method crashing on the only other
    domain could still 'transfer' on the rest."""
    from aarlab.transfer.gate import SuiteOutcome

    a = Suite(name="cities/a", task="truth-cities", weak="minilm-l3", strong="mpnet")
    b = Suite(name="code/b", task="humaneval-pairs", weak="minilm-l3", strong="mpnet")
    settings = GateSettings(suites=[a, b])
    outcomes = [SuiteOutcome(a, "excluded"), SuiteOutcome(b, "error", "ValueError: x")]
    verdict, reason = decide(settings, outcomes)
    assert verdict == "does not transfer" and "code/b (ValueError: x)" in reason


def _tiny(seeds: list[PairedSeed], n: int = 250) -> list[PairedSeed]:
    s = seeds[0]  # one seed, few items: a resolvable gap, but no power at ΔPGR = 0.1
    return [PairedSeed(s.labels[:n], s.weak[:n], s.ceiling[:n], s.baseline[:n], s.method[:n])]


def test_an_underpowered_suite_does_not_hide_the_others() -> None:
    """The full demo's gate said 'underpowered' because one of four suites had power 0.14, although
    the others were each significant: an underpowered suite is now reported but not counted."""
    rng = np.random.default_rng(3)
    settings = _settings(["a", "b", "weak"])
    data = {"a": _suite_data(rng), "b": _suite_data(rng), "weak": _suite_data(rng)}
    strong = {k: [synthetic(s, 0.4, 0.3, rng) for s in v] for k, v in data.items()}
    strong["weak"] = _tiny([synthetic(s, 0.0, 3.0, rng) for s in data["weak"]])
    outcomes = evaluate(settings, strong)
    verdict, reason = decide(settings, outcomes)
    assert verdict == "transfers", reason
    assert "underpowered, not counted:" in reason and "weak (power" in reason
    weak = next(o for o in outcomes if o.suite.name == "weak")
    assert weak.status == "tested" and "underpowered" in weak.note
    null = {k: [synthetic(s, 0.0, 0.3, rng) for s in v] for k, v in data.items()}
    null["weak"] = _tiny([synthetic(s, 0.0, 3.0, rng) for s in data["weak"]])
    verdict, reason = decide(settings, evaluate(settings, null))
    assert verdict == "does not transfer" and "weak (power" in reason  # failures are not hidden either


def test_paired_delta_pairs_items_shared_across_seeds() -> None:
    """Ten copies of one seed are one seed's evidence, not ten (the gate's intervals were too narrow)."""
    rng = np.random.default_rng(4)
    one = [synthetic(s, 0.2, 0.3, rng) for s in _suite_data(rng, seeds=1)]
    ids = tuple(f"i{k}" for k in range(len(one[0].labels)))
    s = one[0]
    named = PairedSeed(s.labels, s.weak, s.ceiling, s.baseline, s.method, ids)
    single, repeated = paired_delta([named], n_boot=500), paired_delta([named] * 10, n_boot=500)
    assert repeated.se == pytest.approx(single.se, rel=0.2)


def test_no_groups_suite_withholds_test_time_structure(tiny_task, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from aarlab.transfer import gate
    from aarlab.transfer.gate import DEFAULT_SUITES, suite_task

    monkeypatch.setattr(gate, "load_task", lambda name: tiny_task)
    suite = Suite(name="x", task="tiny", weak="minilm-l6", strong="mpnet", hide_groups=True)
    hidden = suite_task(suite)
    assert any(r.group for r in tiny_task.records) and not any(r.group for r in hidden.records)
    assert [it.entity for it in hidden.split(3).test.items] == [
        it.entity for it in tiny_task.split(3).test.items
    ]
    assert any(s.hide_groups for s in DEFAULT_SUITES)
    assert "humaneval-pairs" not in {s.task for s in DEFAULT_SUITES}  # power 0.14: not registered

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

"""Measure the gate itself: false-positive rate on null methods and power at a known ΔPGR.

Null methods are vanilla plus noise (logit jitter: same expected accuracy, different predictions). A
method with true ΔPGR = d is vanilla plus the same noise, with enough of vanilla's errors on each seed
corrected that its expected accuracy gain is d × (ceiling − weak). The real suites' labels, teachers and
ceilings are used, so the figures describe the gate as configured, not an idealised one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aarlab.testbed.methods import get_method
from aarlab.testbed.methods.blocks import logit, sigmoid
from aarlab.transfer.gate import GateSettings, collect_suite, decide, evaluate
from aarlab.transfer.stats import PairedSeed


@dataclass(frozen=True)
class SimulationResult:
    """How often the gate said ``transfers``, its verdict counts, and per suite how often the suite's
    Holm-adjusted test was significant (its empirical power at ``effect``; its FPR at 0) and the mean of
    the gate's own power estimate at the target effect."""

    effect: float
    n_sims: int
    transfers_rate: float
    verdicts: dict[str, int]
    suite_significant: dict[str, float] = field(default_factory=dict)
    suite_power_estimate: dict[str, float] = field(default_factory=dict)


def vanilla_data(settings: GateSettings) -> dict[str, list[PairedSeed]]:
    """Labels, weak, ceiling and vanilla predictions for every suite (computed once, then reused)."""
    vanilla = get_method(settings.baseline)
    return {s.name: collect_suite(s, vanilla, None, vanilla) for s in settings.suites}


def synthetic(seed: PairedSeed, effect: float, noise: float, rng: np.random.Generator) -> PairedSeed:
    """Vanilla + logit noise, with ``effect`` × gap of accuracy added by correcting vanilla's errors."""
    p = sigmoid(logit(seed.baseline) + rng.normal(0.0, noise, len(seed.baseline)))
    if effect > 0:
        gap = np.mean((seed.ceiling > 0.5) == seed.labels) - np.mean((seed.weak > 0.5) == seed.labels)
        wrong = np.flatnonzero((p > 0.5) != seed.labels)
        k = min(len(wrong), round(effect * gap * len(seed.labels)))
        fix = rng.choice(wrong, size=k, replace=False)
        p = p.copy()
        p[fix] = np.where(seed.labels[fix], 0.9, 0.1)
    return PairedSeed(seed.labels, seed.weak, seed.ceiling, seed.baseline, p, seed.ids)


def simulate(
    settings: GateSettings,
    data: dict[str, list[PairedSeed]],
    effect: float,
    n_sims: int = 200,
    noise: float = 0.5,
    rng_seed: int = 0,
) -> SimulationResult:
    """Run the gate's statistics on ``n_sims`` synthetic methods with true ΔPGR ≈ ``effect``."""
    rng = np.random.default_rng(rng_seed)
    verdicts: dict[str, int] = {}
    sig: dict[str, int] = {}
    power: dict[str, list[float]] = {}
    for i in range(n_sims):
        sim = {name: [synthetic(s, effect, noise, rng) for s in seeds] for name, seeds in data.items()}
        outcomes = evaluate(settings, sim, rng_seed=i)
        verdict, _ = decide(settings, outcomes)
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
        for o in outcomes:
            name = o.suite.name
            sig[name] = sig.get(name, 0) + int(o.p_holm is not None and o.p_holm < settings.alpha)
            power.setdefault(name, []).append(o.power if o.power is not None else float("nan"))
    return SimulationResult(
        effect,
        n_sims,
        verdicts.get("transfers", 0) / n_sims,
        verdicts,
        {k: v / n_sims for k, v in sig.items()},
        {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in power.items()},
    )

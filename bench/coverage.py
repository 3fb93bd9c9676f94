"""Coverage of the platform's 95% intervals, by simulation with a known truth.

Each simulated study draws items from a population and seeds from a population of training runs; an
item's correctness for a model on a seed is ``1[α_k + β·d_i + b_jk + ε_ijk > 0]`` (item difficulty d,
seed effect b, item × seed noise ε, all normal), so the true expected accuracy of model k is
``Φ(α_k / √(1 + β² + σ_b²))`` and the true PGR is the ratio of true accuracies. The platform's own
interval code is then run on the simulated predictions and we count how often it covers the truth.

Designs (the three places the platform prints intervals):

* ``testbed``: a pool of items, each seed tests on its own 35% draw of the pool (built-in tasks);
* ``fixed``: a reference-format directory: one fixed test set scored by every seed;
* ``verification``: one fixed evaluation pool (sealed) scored by every verification seed;
* ``gate``: a suite (testbed design, 10 seeds) and the paired ΔPGR of a method vs the baseline; also the
  false-positive rate of the gate's one-sided test on null methods (true ΔPGR = 0).

    .venv/bin/python bench/coverage.py [--sims 400] [--boot 1000] [--old]

``--old`` runs the scheme this replaced (items resampled independently within each seed) for comparison.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.stats import norm

from aarlab.testbed import metrics
from aarlab.testbed.metrics import SeedPredictions, bootstrap_all
from aarlab.transfer.gate import GateSettings, Suite, decide, evaluate
from aarlab.transfer.stats import PairedSeed, paired_delta

# weak, ceiling, transfer, baseline (gate) intercepts: true accuracies ≈ 0.66, 0.80, 0.71, 0.71
ALPHA = {"weak": 0.75, "ceiling": 1.55, "transfer": 1.0, "baseline": 1.0}


@dataclass(frozen=True)
class Design:
    name: str
    pool: int  # items in the pool (testbed/gate) or in the fixed evaluation set
    seeds: int
    test_share: float  # share of the pool each seed tests on (1.0: every seed scores the whole set)
    beta: float = 1.0  # item difficulty spread
    seed_sd: float = 0.05  # seed effect on each model's latent score (≈ 0.015 in accuracy)


def truth(alpha: float, d: Design) -> float:
    return float(norm.cdf(alpha / np.sqrt(1 + d.beta**2 + d.seed_sd**2)))


def draw(
    d: Design, rng: np.random.Generator, alphas: dict[str, float], rho: float = 0.7
) -> list[dict[str, np.ndarray]]:
    """One simulated study: per seed, the tested item ids and each model's 0/1 correctness. Models share
    the item difficulty and a share ``rho`` of the item × seed noise (errors are correlated across
    models, as they are between a method and its baseline)."""
    diff = rng.normal(size=d.pool)
    out = []
    for _ in range(d.seeds):
        if d.test_share >= 1:
            idx = np.arange(d.pool)
        else:
            idx = np.sort(rng.choice(d.pool, round(d.test_share * d.pool), replace=False))
        shared = rng.normal(size=len(idx))
        seed = {"ids": idx}
        for m, a in alphas.items():
            eps = rho * shared + np.sqrt(1 - rho**2) * rng.normal(size=len(idx))
            z = a + d.beta * diff[idx] + rng.normal(0, d.seed_sd) + eps
            seed[m] = (z > 0).astype(float)
        out.append(seed)
    return out


def as_proba(correct: np.ndarray) -> np.ndarray:
    return np.where(correct > 0, 0.9, 0.1)  # labels are all True below


def old_bootstrap(seeds: list[SeedPredictions], n_boot: int, rng_seed: int = 0) -> metrics.BootstrapSummary:
    """The scheme this replaced: every seed's items resampled independently, seeds resampled on top."""
    rng = np.random.default_rng(rng_seed)
    S = len(seeds)
    per = np.zeros((3, n_boot, S))
    pt = np.zeros((3, S))
    for s, sp in enumerate(seeds):
        counts = metrics.resample_counts(rng, len(sp.labels), n_boot)
        for k, p in enumerate((sp.weak, sp.ceiling, sp.transfer)):
            c = ((p > 0.5) == sp.labels).astype(float)
            per[k, :, s] = counts @ c / len(c)
            pt[k, s] = c.mean()
    w = rng.multinomial(S, np.full(S, 1.0 / S), size=n_boot) / S
    return metrics._summarise((per * w[None]).sum(axis=2), pt.mean(axis=1))


def coverage(d: Design, sims: int, n_boot: int, old: bool, rng: np.random.Generator) -> dict[str, float]:
    t_acc = truth(ALPHA["transfer"], d)
    w, c = truth(ALPHA["weak"], d), truth(ALPHA["ceiling"], d)
    t_pgr = (t_acc - w) / (c - w)
    hit_acc = hit_pgr = n_pgr = 0
    widths = []
    for i in range(sims):
        study = draw(d, rng, {m: ALPHA[m] for m in ("weak", "ceiling", "transfer")})
        preds = [
            SeedPredictions(
                np.ones(len(s["ids"]), dtype=bool),
                as_proba(s["weak"]),
                as_proba(s["ceiling"]),
                as_proba(s["transfer"]),
                ids=tuple(str(x) for x in s["ids"]),
            )
            for s in study
        ]
        summ = (
            old_bootstrap(preds, n_boot, i)
            if old
            else bootstrap_all(preds, n_boot, i, ("accuracy",))["accuracy"]
        )
        hit_acc += summ.transfer.low <= t_acc <= summ.transfer.high
        widths.append(summ.transfer.high - summ.transfer.low)
        if summ.pgr is not None:
            n_pgr += 1
            hit_pgr += summ.pgr.low <= t_pgr <= summ.pgr.high
    return {
        "acc": hit_acc / sims,
        "pgr": hit_pgr / max(n_pgr, 1),
        "pgr_n": n_pgr,
        "width": float(np.mean(widths)),
    }


def gate(
    d: Design, sims: int, n_boot: int, rng: np.random.Generator, effect: float = 0.12
) -> dict[str, float]:
    """ΔPGR coverage for a method with a real effect, and the one-sided test's FPR on null methods."""
    w, c = truth(ALPHA["weak"], d), truth(ALPHA["ceiling"], d)
    b = ALPHA["baseline"]
    t_delta = (truth(b + effect, d) - truth(b, d)) / (c - w)
    hit = fp = 0
    for i in range(sims):
        for null in (False, True):
            alphas = {
                "weak": ALPHA["weak"],
                "ceiling": ALPHA["ceiling"],
                "baseline": b,
                "method": b if null else b + effect,
            }
            study = draw(d, rng, alphas)
            seeds = [
                PairedSeed(
                    np.ones(len(s["ids"]), dtype=bool),
                    *(as_proba(s[m]) for m in ("weak", "ceiling", "baseline", "method")),
                    ids=tuple(str(x) for x in s["ids"]),
                )
                for s in study
            ]
            est = paired_delta(seeds, n_boot, i)
            if null:
                fp += est.p_value(0.0) < 0.05
            else:
                hit += est.low <= t_delta <= est.high
    return {"delta": hit / sims, "fpr": fp / sims, "true_delta": t_delta}


def gate_verdicts(d: Design, sims: int, n_boot: int, rng: np.random.Generator, n_suites: int = 3) -> float:
    """How often the gate's verdict is ``transfers`` for null methods (true ΔPGR = 0) on ``n_suites``
    simulated suites, with the registered rule (Holm, decisive suites, require all)."""
    settings = GateSettings(
        suites=[Suite(name=f"s{k}", task="simulated", weak="w", strong="s") for k in range(n_suites)],
        n_boot=n_boot,
    )
    b = ALPHA["baseline"]
    alphas = {"weak": ALPHA["weak"], "ceiling": ALPHA["ceiling"], "baseline": b, "method": b}
    hits = 0
    for i in range(sims):
        data = {}
        for suite in settings.suites:
            data[suite.name] = [
                PairedSeed(
                    np.ones(len(s["ids"]), dtype=bool),
                    *(as_proba(s[m]) for m in ("weak", "ceiling", "baseline", "method")),
                    ids=tuple(str(x) for x in s["ids"]),
                )
                for s in draw(d, rng, alphas)
            ]
        verdict, _ = decide(settings, evaluate(settings, data, rng_seed=i))
        hits += verdict == "transfers"
    return hits / sims


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=400)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--old", action="store_true", help="also measure the replaced scheme")
    ap.add_argument("--no-t", action="store_true", help="without the few-seeds t correction")
    args = ap.parse_args()
    metrics.SEED_T_CORRECTION = not args.no_t
    designs = [
        Design("testbed (pool 1000, 35% tested per seed, 5 seeds)", 1000, 5, 0.35),
        Design("fixed split (30 test items, 20 seeds)", 30, 20, 1.0, seed_sd=0.05),
        Design("fixed split (300 test items, 5 seeds)", 300, 5, 1.0),
        Design("verification (600 sealed items, 3 seeds)", 600, 3, 1.0),
    ]
    console = Console()
    table = Table(title=f"coverage of nominal 95% intervals ({args.sims} simulated studies per row)")
    for col in ("design", "scheme", "transfer acc", "PGR", "mean CI width (acc)", "s"):
        table.add_column(col)
    schemes: list[tuple[str, bool]] = [("paired (current)", False)] + (
        [("independent (old)", True)] if args.old else []
    )
    for d in designs:
        for label, old in schemes:
            t0 = time.perf_counter()
            r = coverage(d, args.sims, args.boot, old, np.random.default_rng(0))
            table.add_row(
                d.name,
                label,
                f"{r['acc']:.3f}",
                f"{r['pgr']:.3f} (n={r['pgr_n']})",
                f"{r['width']:.3f}",
                f"{time.perf_counter() - t0:.0f}",
            )
    console.print(table)
    g = Design("gate suite (pool 1000, 35% tested per seed, 10 seeds)", 1000, 10, 0.35)
    t0 = time.perf_counter()
    r = gate(g, args.sims, args.boot, np.random.default_rng(1))
    console.print(
        f"{g.name}: ΔPGR CI coverage {r['delta']:.3f} (true ΔPGR {r['true_delta']:.3f}); "
        f"one-sided test at α = 0.05 on null methods: FPR {r['fpr']:.3f} ({time.perf_counter() - t0:.0f} s)"
    )
    t0 = time.perf_counter()
    fpr = gate_verdicts(g, max(50, args.sims // 4), args.boot, np.random.default_rng(2))
    console.print(
        f"gate verdict on 3 such suites (Holm, decisive suites, require all), null methods: "
        f"'transfers' {fpr:.3f} of the time ({time.perf_counter() - t0:.0f} s)"
    )



if __name__ == "__main__":
    main()

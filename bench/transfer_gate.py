"""Measure the transfer gate: false-positive rate on null methods and power at ΔPGR = 0.1, per suite.

Targets (issues #6, #12): verdict FPR ≤ 5%, and every registered suite with power ≥ 0.8 at ΔPGR = 0.1
with its registered seeds (empirical: how often the suite's Holm-adjusted test is significant on
simulated methods with that effect; and the gate's own power estimate).

    .venv/bin/python bench/transfer_gate.py [--sims 200] [--effect 0.1] [--noise 0.5] [--with-code]
"""

from __future__ import annotations

import argparse
import time

from aarlab.render import Col, console_for, emit, table
from aarlab.transfer.gate import CODE_SUITE, default_settings
from aarlab.transfer.simulate import simulate, vanilla_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--effect", type=float, default=0.1)
    ap.add_argument("--noise", type=float, default=0.5, help="logit noise of the synthetic methods")
    ap.add_argument(
        "--with-code", action="store_true", help="add the unregistered code/humaneval-pairs suite"
    )
    ap.add_argument("--only", default="", help="comma-separated suite names to measure (default: all)")
    args = ap.parse_args()
    console = console_for()
    settings = default_settings()
    suites = list(settings.suites) + ([CODE_SUITE] if args.with_code else [])
    if args.only:
        keep = set(args.only.split(","))
        suites = [s for s in suites if s.name in keep]
    settings = settings.model_copy(update={"suites": suites})
    t0 = time.perf_counter()
    data = vanilla_data(settings)
    console.print(
        f"collected vanilla on {len(data)} suites × {len(settings.suites[0].seeds)} seeds "
        f"in {time.perf_counter() - t0:.1f} s (settings {settings.fingerprint()})"
    )
    rows = []
    results = {}
    for effect, target in ((0.0, "FPR ≤ 0.05"), (args.effect, "power ≥ 0.8")):
        t = time.perf_counter()
        r = simulate(settings, data, effect, n_sims=args.sims, noise=args.noise)
        results[effect] = r
        verdicts = ", ".join(f"{k}: {v}" for k, v in sorted(r.verdicts.items()))
        rows.append(
            [f"{effect:.2f}", f"{r.transfers_rate:.3f}", verdicts, target, f"{time.perf_counter() - t:.0f}"]
        )
    cols = [
        Col("true ΔPGR"),
        Col("verdict 'transfers'"),
        Col("all verdicts"),
        Col("target"),
        Col("s", drop=1),
    ]
    emit(console, table(f"transfer gate, {args.sims} simulated methods per row", cols, rows, console))
    null, eff = results[0.0], results[args.effect]
    suite_rows = []
    for s in settings.suites:
        p = eff.suite_significant.get(s.name, float("nan"))
        suite_rows.append(
            [
                s.name,
                str(len(s.seeds)),
                f"{null.suite_significant.get(s.name, float('nan')):.3f}",
                f"{p:.3f}",
                f"{eff.suite_power_estimate.get(s.name, float('nan')):.3f}",
                "yes" if p >= 0.8 else "NO",
            ]
        )
    suite_cols = [
        Col("suite"),
        Col("seeds"),
        Col("FPR (true ΔPGR 0)"),
        Col(f"power (true ΔPGR {args.effect})"),
        Col("power estimate"),
        Col("≥ 0.8"),
    ]
    title = "per suite: share of simulated methods significant (Holm) / the gate's power estimate"
    emit(console, table(title, suite_cols, suite_rows, console))


if __name__ == "__main__":
    main()

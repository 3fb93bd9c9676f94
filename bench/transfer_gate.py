"""Measure the transfer gate: false-positive rate on null methods and power at ΔPGR = 0.1.

Targets (issue #6): FPR ≤ 5%, power ≥ 0.8 at ΔPGR = 0.1, with the default registered settings.

    .venv/bin/python bench/transfer_gate.py [--sims 200] [--effect 0.1] [--noise 0.5]
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from aarlab.transfer.gate import default_settings
from aarlab.transfer.simulate import simulate, vanilla_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--effect", type=float, default=0.1)
    ap.add_argument("--noise", type=float, default=0.5, help="logit noise of the synthetic methods")
    args = ap.parse_args()
    console = Console()
    settings = default_settings()
    t0 = time.perf_counter()
    data = vanilla_data(settings)
    console.print(f"collected vanilla on {len(data)} suites × {len(settings.suites[0].seeds)} seeds "
                  f"in {time.perf_counter() - t0:.1f} s (settings {settings.fingerprint()})")
    table = Table(title=f"transfer gate, {args.sims} simulated methods per row")
    for col in ("true ΔPGR", "verdict 'transfers'", "all verdicts", "target", "s"):
        table.add_column(col)
    for effect, target in ((0.0, "FPR ≤ 0.05"), (args.effect, "power ≥ 0.8")):
        t = time.perf_counter()
        r = simulate(settings, data, effect, n_sims=args.sims, noise=args.noise)
        table.add_row(f"{effect:.2f}", f"{r.transfers_rate:.3f}", str(r.verdicts), target,
                      f"{time.perf_counter() - t:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()

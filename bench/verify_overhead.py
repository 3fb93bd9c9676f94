"""Verified re-execution: overhead against the agent's own run, and false flags on honest baselines.

For each baseline: the agent's cost of producing predictions in its sandbox (one fresh process running
the method on its exported bundle, as `aarlab` would), against the verifier's cost per seed (sandboxed
child, same work, plus the trusted parent's teacher/ceiling training and scoring). Then every baseline is
verified with ablations on, and the high/critical flags are counted (target: zero on honest baselines).

    .venv/bin/python bench/verify_overhead.py [--task truth-cities] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aarlab.server.datadir import init_task, load_eval_task, task_dir
from aarlab.server.sandbox import export_sandbox
from aarlab.testbed.methods.baselines import BASELINES
from aarlab.verify.runner import TaskSource, VerifySettings, verify

METHOD = """from aarlab.testbed.methods import get_method
_spec = get_method({name!r})
Config = _spec.config
def run(ctx):
    return _spec.run(ctx)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="truth-cities")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=BASELINES)
    args = ap.parse_args()
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="aarlab-verify-bench-"))
    data = root / "data"
    init_task(data, args.task)
    meta = json.loads((task_dir(data, args.task) / "task.json").read_text())
    ev = load_eval_task(data, args.task)
    is_dev = {it.id: True for it in ev.dev.items} | {it.id: False for it in ev.sealed.items}
    source = TaskSource(args.task, task_dir(data, args.task), meta, is_dev, forbidden=(str(data),))
    bundle = export_sandbox(data, args.task, root / "bundle")
    seeds = tuple(range(1001, 1001 + args.seeds))
    table = Table(title=f"verified vs agent run time and flags, {args.task}, {len(seeds)} verification seeds")
    for col in (
        "method",
        "agent run s",
        "verified s / seed",
        "ratio",
        "verified dev",
        "verified sealed",
        "PGR",
        "ablation verdict",
        "high/critical flags",
    ):
        table.add_column(col)
    false_flags = 0
    for name in args.methods:
        mdir = root / "methods" / name
        mdir.mkdir(parents=True)
        (mdir / "method.py").write_text(METHOD.format(name=name))
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from pathlib import Path; from aarlab.testbed.bundle import "
                f"run_on_bundle; run_on_bundle(Path({str(bundle)!r}), {str(mdir)!r})",
            ],
            check=True,
        )
        agent = time.perf_counter() - t0
        plain = verify(
            source, mdir, None, root / "work" / name, settings=VerifySettings(seeds=seeds, ablations=False)
        )
        per_seed = plain.seconds / len(seeds)
        full = verify(source, mdir, None, root / "work-abl" / name, settings=VerifySettings(seeds=seeds))
        severe = [f for f in full.flags if f.severity in ("high", "critical")]
        false_flags += len(severe) if name != "prior-consistency" else 0
        table.add_row(
            name,
            f"{agent:.1f}",
            f"{per_seed:.1f}",
            f"{per_seed / agent:.2f}x",
            f"{full.dev_acc:.3f}" if full.dev_acc else "–",
            f"{full.sealed_acc:.3f}" if full.sealed_acc else "–",
            f"{full.pgr:+.2f}" if full.pgr is not None else "–",
            full.ablation.verdict if full.ablation else "–",
            ", ".join(f.kind for f in severe) or "none",
        )
    console.print(table)
    console.print(f"high/critical flags on honest teacher-using baselines: {false_flags}")


if __name__ == "__main__":
    main()

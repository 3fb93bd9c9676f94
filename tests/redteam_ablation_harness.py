"""Offline check of the red-team ablation detector (issue 11, HOLE 1 in tests/REDTEAM_HOLES.md).

Runs the verifier's own :func:`aarlab.verify.runner.verify` on the tiny truth-cities task with
``execute_runs`` swapped for "write the bundle, load it, ask ``ablated(ctx)``", so every run (the real one
and each ablation) is judged by the detector of ``tests/test_redteam_confinement.py`` exactly as the
sandboxed method would see it. Not a test (no GPU, no sandbox; ~1 min):

    .venv/bin/python tests/redteam_ablation_harness.py [n_seeds]
"""

from __future__ import annotations

import contextlib
import importlib.util
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any


def main(n_seeds: int = 5) -> None:
    here = Path(__file__).with_name("test_redteam_confinement.py")
    spec = importlib.util.spec_from_file_location("redteam_methods", here)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["redteam_methods"] = mod
    spec.loader.exec_module(mod)

    import aarlab.verify.runner as runner
    from aarlab.server.datadir import init_task
    from aarlab.server.worker import task_source
    from aarlab.testbed.bundle import _strong_model, load_bundle
    from aarlab.testbed.context import MethodContext, WeakLabels
    from aarlab.testbed.loader import write_jsonl
    from aarlab.testbed.tasks.registry import split_by_entity
    from aarlab.testbed.tasks.truth_cities import build_truth_cities

    tmp = Path(tempfile.mkdtemp())
    ref = tmp / "ref" / "tiny-cities"
    parts = split_by_entity(build_truth_cities(n_cities=170, n_capitals=20), (0.25, 0.4, 0.35), 0)
    for name, part in zip(("train_label", "train_unlabel", "test"), parts, strict=True):
        write_jsonl(ref / f"{name}.jsonl", part)
    init_task(tmp / "data", str(ref), name="tiny-cities")
    source = task_source(tmp / "data", "tiny-cities")
    # outside the sandbox: no bundle folder tells to read
    code = mod.DETECT.replace('open("/sandbox/bundle/manifest.json").read()', '""')
    ns: dict[str, Any] = {}
    code = code.replace('os.listdir("/sandbox/bundle")', "[]").replace(
        "sys.argv", "[]"
    )  # argv names this file
    exec(code, ns)
    rows: list[dict[str, bool]] = []

    class Done(Exception):
        pass

    def judge_runs(pending: Any, method_dir: Any, config: Any, **_: Any) -> None:
        """In place of ``finish_runs``: each bundle the verifier wrote, loaded and judged in-process."""
        row = {}
        for run, b, job in zip(pending.order, pending.bdirs, pending.written, strict=True):
            job.result()
            bd = load_bundle(b)
            ctx = MethodContext(
                weak=WeakLabels(bd.weak.copy()),
                unlabeled=bd.unlabeled,
                test=bd.dev,
                strong=_strong_model(bd, 0, False),
                seed=0,
                config=None,
            )
            row[run.name] = bool(ns["ablated"](ctx))
        rows.append(row)
        raise Done

    runner.finish_runs = judge_runs  # type: ignore[assignment]
    for k in range(n_seeds):
        seed = secrets.randbelow(2**31)
        with contextlib.suppress(Done):
            runner.verify(source, tmp, None, tmp / f"w{k}", settings=runner.VerifySettings(seeds=(seed,)))
        print(seed, rows[-1], flush=True)
    kinds = rows[0].keys()
    print({kind: f"{sum(r[kind] for r in rows)}/{len(rows)} taken for an ablation" for kind in kinds})


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

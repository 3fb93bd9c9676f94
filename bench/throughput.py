"""Throughput (issue #16): every figure against its target in one run, and a profiler mode.

    .venv/bin/python bench/throughput.py [--task truth-cities] [--method vanilla] [--server-seconds 20]
        [--db sqlite] [--gate] [--demo] [--full-demo] [--research-minutes 0]
    .venv/bin/python bench/throughput.py --profile {baseline,verify,child,gate} [--top 30]
    .venv/bin/python bench/throughput.py --zygote-compare [--task truth-cities] [--method vanilla]

Figures (2 cores; the load average is printed because other work on the machine stretches every wall
time): the confined child's start-up; one verification (3 seeds, every ablation, confined) against the
agent's own 3-seed run of the same method in a fresh process, cold (first verification of the seeds) and
warm (the trusted artefacts of the seeds prepared, as the worker's seed pool makes them); a projection of
verified experiments per agent-hour with 4 agents from the measured verification cost; a warm 5-seed
``aarlab baseline``; dev-submission p50/p99 under 9 agents (``bench/server_load.py``); with ``--gate`` each
transfer-gate suite's preparation cost, cold and warm; with ``--demo`` / ``--full-demo`` the wall time
of ``aarlab demo --quick`` / ``aarlab demo`` from an empty ``AARLAB_HOME``, then warm; with
``--research-minutes`` the measured rate from ``bench/research.py`` (4 agents).

``--profile`` runs one target under cProfile (stdlib) and prints where the time goes, cumulative.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

METHOD = """from aarlab.testbed.methods import get_method
_spec = get_method({name!r})
Config = _spec.config
def run(ctx):
    return _spec.run(ctx)
"""

AGENT_RUN = (
    "import sys; from aarlab.testbed.pipeline import run_experiment; "
    "run_experiment(sys.argv[1], sys.argv[2], seeds=3, show_progress=False)"
)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def cpu() -> float:
    """CPU seconds of this process and its finished children (steadier than wall time under load),
    including the runs the sandbox zygote forked for it (not this process's children)."""
    from aarlab.sandbox import zygote_client

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime + zygote_client.child_cpu_seconds


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def demo_times(mode: list[str]) -> tuple[float, float]:
    """Wall seconds of ``aarlab demo [mode] --hold 0`` from an empty ``AARLAB_HOME`` (every feature,
    pool and experiment cache empty; the machine-wide sandbox image is kept), then again (warm). ``--hold
    0``: the demo otherwise keeps its dashboard up 60 s after finishing."""
    cmd = [str(Path(sys.executable).with_name("aarlab")), "demo", *mode, "--hold", "0"]
    with tempfile.TemporaryDirectory(prefix="aarlab-demo-home-") as home:
        env = {**os.environ, "AARLAB_HOME": home}
        return wall(cmd, env), wall(cmd, env)


class World:
    """A data directory with the task initialised and a method folder for ``method``."""

    def __init__(self, task: str, method: str) -> None:
        from aarlab.server.datadir import init_task, load_eval_task, task_dir
        from aarlab.verify.runner import TaskSource

        self.root = Path(tempfile.mkdtemp(prefix="aarlab-throughput-"))
        data = self.root / "data"
        init_task(data, task)
        meta = json.loads((task_dir(data, task) / "task.json").read_text())
        ev = load_eval_task(data, task)
        is_dev = {it.id: True for it in ev.dev.items} | {it.id: False for it in ev.sealed.items}
        self.task = task
        self.source = TaskSource(task, task_dir(data, task), meta, is_dev, forbidden=(str(data),))
        self.method_dir = self.root / "method"
        self.method_dir.mkdir()
        (self.method_dir / "method.py").write_text(METHOD.format(name=method))
        self.method = method

    def verify(self, seeds: tuple[int, ...]) -> Any:
        from aarlab.verify.runner import VerifySettings, verify

        settings = VerifySettings(seeds=seeds, ablation_seeds=len(seeds))
        return verify(self.source, self.method_dir, None, self.root / "work", settings=settings)


def child_startup(n: int = 3) -> dict[str, float]:
    """Median seconds: a bare confined child (namespaces, uid, seccomp, audit hook; entry json.dumps)
    and the import of what a method child loads before the method (numpy, scikit-learn, the bundle)."""
    from aarlab.verify.audit import AuditPolicy, default_read_roots
    from aarlab.verify.sandbox import run_sandboxed

    pol = AuditPolicy(
        sandbox="/sandbox",
        read_roots=default_read_roots(),
        forbidden_roots=[],
        dataset_texts=[],
        forbidden_modules=[],
    )
    bare = []
    for _ in range(n):
        t0 = time.perf_counter()
        out = run_sandboxed("json:dumps", {"obj": 1}, binds=(), policy=pol)
        bare.append(time.perf_counter() - t0)
        if out.status != "ok":
            raise SystemExit(f"the confined child failed: {out.reason}\n{out.detail}")
    imports = [wall([sys.executable, "-I", "-c", "import aarlab.verify.jobs"]) for _ in range(n)]
    python = [wall([sys.executable, "-I", "-c", "pass"]) for _ in range(n)]
    return {
        "confined_child_s": statistics.median(bare),
        "method_imports_s": statistics.median(imports),
        "python_s": statistics.median(python),
    }


def verification(world: World, seeds: int = 3) -> dict[str, Any]:
    """Agent's own fresh-process 3-seed run vs one verification, cold then warm (same seeds)."""
    from aarlab.verify.artefacts import ARTEFACTS

    ARTEFACTS.clear()
    wall([sys.executable, "-c", AGENT_RUN, str(world.source.directory), world.method])  # warms the caches
    agent = wall([sys.executable, "-c", AGENT_RUN, str(world.source.directory), world.method])
    chosen = tuple(range(7001, 7001 + seeds))
    c0 = cpu()
    cold = world.verify(chosen)
    c1 = cpu()
    warm = world.verify(chosen)
    c2 = cpu()
    return {
        "cold_cpu_s": c1 - c0,
        "warm_cpu_s": c2 - c1,
        "agent_s": agent,
        "cold_s": cold.seconds,
        "warm_s": warm.seconds,
        "warm_method_s": warm.method_seconds,
        "status": warm.status,
        "flags": [f.kind for f in warm.flags if f.severity in ("high", "critical")],
    }


def zygote_compare(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """Exec path vs zygote, side by side in one run: child start-up, verification cold and warm against
    the agent's own 3-seed run, and the projected verified experiments per agent-hour with 4 agents."""
    from aarlab.sandbox import zygote_client as zc

    world = World(args.task, args.method)
    got: dict[str, dict[str, Any]] = {}
    for mode in ("exec", "zygote"):
        os.environ[zc.ZYGOTE_ENV] = "1" if mode == "zygote" else "0"
        zc.shutdown()
        t0 = time.perf_counter()
        child_startup(1)  # the zygote's own start (its preloads) happens here, once per parent process
        first = time.perf_counter() - t0
        c = child_startup()
        v = verification(world)
        got[mode] = {**c, **v, "first_s": first}
        print(f"{mode}: {json.dumps(got[mode])}", flush=True)
    zc.shutdown()
    os.environ.pop(zc.ZYGOTE_ENV, None)
    cores = os.cpu_count() or 1
    rows = []
    for mode, g in got.items():
        agent = g["agent_s"]
        start = f"{g['confined_child_s']:.2f} s (first run, zygote start included: {g['first_s']:.2f} s)"
        ver = (
            f"cold {g['cold_s']:.1f} s = {g['cold_s'] / agent:.2f}x ({g['cold_cpu_s']:.1f} CPU s); "
            f"warm {g['warm_s']:.1f} s = {g['warm_s'] / agent:.2f}x ({g['warm_cpu_s']:.1f} CPU s) "
            f"(agent {agent:.1f} s; {g['status']}; high flags {g['flags'] or 'none'})"
        )
        hour = f"<= {3600 * cores / g['warm_s'] / 4:.0f} ({cores} cores x 3600 s / {g['warm_s']:.1f} s / 4)"
        rows += [
            (f"[{mode}] confined child start-up", start, "small"),
            (f"[{mode}] verification / agent's 3-seed run", ver, "<= 1.5x"),
            (f"[{mode}] verified / agent-hour, 4 agents", hour, ">= 300"),
        ]
    return rows


def warm_baseline(task: str) -> float:
    cmd = [str(Path(sys.executable).with_name("aarlab")), "baseline", "--task", task, "--json"]
    wall(cmd)
    return wall(cmd)


def server(seconds: float, dbs: list[str], think: float) -> dict[str, dict[str, Any]]:
    """``bench/server_load.py`` with 9 agents, each waiting ``think`` s between requests (0: as fast as the
    server answers, i.e. its capacity, where latency is queueing)."""
    from server_load import make_data_dir, run_load

    out = {}
    root = Path(tempfile.mkdtemp(prefix="aarlab-throughput-server-"))
    data = make_data_dir(root, 2000)
    for db in dbs:
        if db == "sqlite":
            url = f"sqlite:///{root / 'bench.db'}"
            out[db] = run_load(data, url, 9, seconds, think)
        else:
            from aarlab.server.pgtemp import TempPostgres

            with TempPostgres() as pg:
                out[db] = run_load(data, pg.new_database(), 9, seconds, think)
    return out


def gate_suites() -> list[tuple[str, int, float, float, str]]:
    from aarlab.transfer.gate import DEFAULT_SUITES
    from aarlab.verify.gate_runs import prepare_suites

    cold = prepare_suites(DEFAULT_SUITES)
    warm = prepare_suites(DEFAULT_SUITES)
    return [(c.suite, c.items, c.seconds, w.seconds, c.error) for c, w in zip(cold, warm, strict=True)]


def profile(target: str, args: argparse.Namespace) -> None:
    jobs: dict[str, Callable[[], Any]] = {}
    if target == "baseline":
        from aarlab.testbed.pipeline import run_experiment

        jobs["baseline"] = lambda: run_experiment(args.task, args.method, seeds=5, show_progress=False)
    elif target == "verify":
        world = World(args.task, args.method)
        world.verify((7001, 7002, 7003))  # cold once, unprofiled: the profile shows the steady state
        jobs["verify"] = lambda: world.verify((7001, 7002, 7003))
    elif target == "child":
        jobs["child"] = lambda: child_startup(5)
    elif target == "gate":
        jobs["gate"] = gate_suites
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    jobs[target]()
    prof.disable()
    print(f"{target}: {time.perf_counter() - t0:.2f} s; load {load()}")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="truth-cities")
    ap.add_argument("--method", default="vanilla")
    ap.add_argument(
        "--server-seconds", type=float, default=30.0, help="per database and load (a p99 needs ~250 requests)"
    )
    ap.add_argument("--db", default="sqlite", help="comma list: sqlite, postgresql (empty: skip)")
    ap.add_argument("--gate", action="store_true", help="prepare every gate suite, cold then warm")
    ap.add_argument("--demo", action="store_true", help="time `aarlab demo --quick`, cold then warm")
    ap.add_argument("--full-demo", action="store_true", help="time the full `aarlab demo`, cold then warm")
    ap.add_argument("--research-minutes", type=float, default=0.0, help="run bench/research.py, 4 agents")
    ap.add_argument("--profile", choices=["baseline", "verify", "child", "gate"])
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument(
        "--zygote-compare", action="store_true", help="exec path vs zygote side by side (child, verification)"
    )
    args = ap.parse_args()
    if args.profile:
        profile(args.profile, args)
        return
    if args.zygote_compare:
        print(f"load at start: {load()}", flush=True)
        rows = zygote_compare(args)
        print(f"load at end: {load()}")
        width = max(len(r[0]) for r in rows)
        for name, value, target in rows:
            print(f"{name:<{width}}  {value}  [target {target}]")
        return
    rows: list[tuple[str, str, str]] = []
    print(f"load at start: {load()}", flush=True)
    c = child_startup()
    rows.append(
        (
            "confined child start-up",
            f"{c['confined_child_s']:.2f} s bare; imports of a method child {c['method_imports_s']:.2f} s "
            f"(python alone {c['python_s']:.2f} s)",
            "small",
        )
    )
    world = World(args.task, args.method)
    v = verification(world)
    rows.append(
        (
            "verification / agent's 3-seed run",
            f"cold {v['cold_s']:.1f} s = {v['cold_s'] / v['agent_s']:.2f}x ({v['cold_cpu_s']:.1f} CPU s); "
            f"warm {v['warm_s']:.1f} s = {v['warm_s'] / v['agent_s']:.2f}x ({v['warm_cpu_s']:.1f} CPU s) "
            f"(agent {v['agent_s']:.1f} s; {v['status']}; "
            f"high flags {v['flags'] or 'none'})",
            "<= 1.5x",
        )
    )
    cores = os.cpu_count() or 1
    per_hour = 3600 * cores / v["warm_s"] / 4  # verification alone on every core, shared by 4 agents
    rows.append(
        (
            "verified / agent-hour, 4 agents",
            f"<= {per_hour:.0f} (projection: {cores} cores x 3600 s / {v['warm_s']:.1f} s per warm "
            "verification / 4 agents; agents' own CPU not counted)",
            ">= 300",
        )
    )
    if args.research_minutes > 0:
        out = subprocess.run(
            [sys.executable, str(BENCH / "research.py"), "--agents", "4", "--minutes",
             str(args.research_minutes), "--verify-seeds", "3", "--json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(
            ("verified / agent-hour, 4 agents (measured)", str(r["verified_per_agent_hour"]), ">= 300")
        )
    b = warm_baseline(args.task)
    rows.append(("warm 5-seed vanilla baseline", f"{b:.1f} s", "<= 2 s"))
    for flag, mode, target in (
        (args.demo, ["--quick"], "<= 60 s cold, <= 20 s warm"),
        (args.full_demo, [], "<= 5 min cold, <= 2 min warm"),
    ):
        if flag:
            cold, warm = demo_times(mode)
            label = "demo " + (" ".join(mode) or "(full)")
            rows.append((label, f"cold {cold:.0f} s (empty AARLAB_HOME), warm {warm:.0f} s", target))
    if args.gate:
        for name, items, cold, warm, err in gate_suites():
            rows.append(
                (f"gate suite {name}", f"{items} items: cold {cold:.1f} s, warm {warm:.2f} s {err}", "")
            )
    dbs = [d for d in args.db.split(",") if d]
    if dbs:
        for think, what, target in ((0.5, "agents thinking 0.5 s", "p99 < 100 ms, 0 errors"),
                                    (0.0, "no think: capacity", "")):  # fmt: skip
            for db, res in server(args.server_seconds, dbs, think).items():
                dev = res.get("POST dev/submissions")
                rows.append(
                    (
                        f"dev submission, 9 {what}, {db}",
                        f"p50 {dev['p50_ms']} ms, p99 {dev['p99_ms']} ms, {dev['per_s']}/s, "
                        f"errors {dev['errors']}, n {dev['n']}"
                        if isinstance(dev, dict)
                        else "no submission finished in the time given (raise --server-seconds)",
                        target,
                    )
                )
    print(f"load at end: {load()}")
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value}  [target {target}]")


if __name__ == "__main__":
    main()

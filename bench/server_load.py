"""Load benchmark of the evaluation server: N simulated agents submitting dev predictions and reading
(and occasionally writing) the forum, against a real uvicorn subprocess on SQLite and on PostgreSQL.

    .venv/bin/python bench/server_load.py [--duration 60] [--agents 9] [--items 2000] [--db sqlite,postgresql]

Prints p50/p99 latency per endpoint, throughput and errors. Target: dev-submission p99 < 100 ms, no errors.
Each agent runs a closed loop (request, optional think time, request; agents start out of lockstep and
the first ``WARMUP_S`` seconds are not counted); the server runs with its default settings except a rate
limit and budget high enough not to refuse the benchmark's own traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

from aarlab.server.auth import add_agent
from aarlab.server.datadir import init_task, load_eval_task
from aarlab.server.db import make_engine, migrate, session_factory, session_scope
from aarlab.server.pgtemp import TempPostgres, free_port
from aarlab.testbed.loader import write_jsonl
from aarlab.testbed.schema import SingleRecord

TASK = "bench"


def make_data_dir(root: Path, n_dev: int) -> Path:
    """A synthetic labelled task whose dev part has about ``n_dev`` items (one entity per record)."""
    rng = np.random.default_rng(0)
    ref = root / "ref" / TASK

    def records(prefix: str, n: int) -> list[SingleRecord]:
        return [
            SingleRecord(
                question=f"{prefix} question {i}",
                choice=f"answer {i}",
                label=bool(rng.random() < 0.5),
                entity=f"{prefix}-{i}",
            )
            for i in range(n)
        ]

    write_jsonl(ref / "train_label.jsonl", records("tl", 200))
    write_jsonl(ref / "train_unlabel.jsonl", records("tu", 200))
    write_jsonl(ref / "test.jsonl", records("te", 2 * n_dev))
    data = root / "data"
    init_task(data, str(ref), name=TASK)
    return data


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server at {url} did not start")


#: Seconds of load before latencies count (each agent's first requests open connections and warm the
#: server; with 9 agents and a short run they would otherwise be the p99).
WARMUP_S = 3.0


def run_load(data_dir: Path, db_url: str, agents: int, duration: float, think: float) -> dict[str, object]:
    engine = make_engine(db_url)
    migrate(engine)
    with session_scope(session_factory(engine)) as s:
        tokens = [add_agent(s, f"bench-{i}") for i in range(agents)]
    engine.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AARLAB_SERVER_RATE_PER_MINUTE": "1000000", "AARLAB_SERVER_DEV_BUDGET": "1000000"}
    cmd = [
        sys.executable,
        "-m",
        "aarlab.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--db",
        db_url,
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(url)
        ids = [it.id for it in load_eval_task(data_dir, TASK).dev.items]
        lat: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        lock = threading.Lock()
        start = time.monotonic()
        measure_from = start + WARMUP_S
        stop = measure_from + duration

        def agent(k: int) -> None:
            rng = np.random.default_rng(k)
            # Pre-serialised bodies: the load generator should spend its CPU sending, not encoding JSON.
            bodies = [
                json.dumps(
                    {"predictions": dict(zip(ids, rng.random(len(ids)).round(4).tolist(), strict=True))}
                ).encode()
                for _ in range(4)
            ]
            headers = {"Authorization": f"Bearer {tokens[k]}", "Content-Type": "application/json"}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
                if think:
                    time.sleep(float(rng.uniform(0, think)))  # agents out of lockstep
                i = 0
                while time.monotonic() < stop:
                    calls = [
                        (
                            "POST dev/submissions",
                            "POST",
                            f"/api/v1/tasks/{TASK}/dev/submissions",
                            bodies[i % 4],
                        ),
                        ("GET forum/posts", "GET", "/api/v1/forum/posts?limit=20", None),
                    ]
                    if i % 5 == 0:
                        post = json.dumps({"kind": "insight", "title": f"a{k} note {i}", "body": "x" * 500})
                        calls.append(("POST forum/posts", "POST", "/api/v1/forum/posts", post.encode()))
                    for name, method, path, body in calls:
                        t0 = time.perf_counter()
                        try:
                            r = c.request(method, path, content=body)
                            ok = r.status_code < 400
                        except httpx.HTTPError:
                            ok = False
                        dt = time.perf_counter() - t0
                        if time.monotonic() >= measure_from:  # not the warm-up
                            with lock:
                                lat[name].append(dt)
                                if not ok:
                                    errors[name] += 1
                        if think:
                            time.sleep(think)
                    i += 1

        t_start = time.monotonic()
        threads = [threading.Thread(target=agent, args=(k,)) for k in range(agents)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - max(t_start, measure_from)
    finally:
        proc.terminate()
        proc.wait(10)
    out: dict[str, object] = {}
    for name, xs in sorted(lat.items()):
        a = np.array(xs) * 1000
        out[name] = {
            "n": len(a),
            "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1),
            "per_s": round(len(a) / elapsed, 1),
            "errors": errors[name],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load per database")
    ap.add_argument("--agents", type=int, default=9)
    ap.add_argument("--items", type=int, default=2000, help="dev items (approximate)")
    ap.add_argument("--think", type=float, default=0.0, help="seconds each agent waits between requests")
    ap.add_argument("--db", default="sqlite,postgresql", help="comma list: sqlite, postgresql")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("AARLAB_HOME", str(Path(tmp) / "home"))
        data = make_data_dir(Path(tmp), args.items)
        n_dev = len(load_eval_task(data, TASK).dev)
        for backend in args.db.split(","):
            print(
                f"\n== {backend}: {args.agents} agents, {n_dev} dev items, {args.duration:.0f} s, "
                f"think {args.think} s",
                flush=True,
            )
            if backend == "sqlite":
                res = run_load(
                    data, f"sqlite:///{Path(tmp) / 'bench.db'}", args.agents, args.duration, args.think
                )
            elif backend == "postgresql":
                with TempPostgres() as pg:
                    res = run_load(data, pg.new_database(), args.agents, args.duration, args.think)
            else:
                raise SystemExit(f"unknown --db {backend!r}; use sqlite and/or postgresql")
            print(f"{'endpoint':24} {'n':>6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
            for name, r in res.items():
                assert isinstance(r, dict)
                cols = f"{r['n']:>6} {r['per_s']:>7} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']:>7}"
                print(f"{name:24} {cols}")


if __name__ == "__main__":
    main()

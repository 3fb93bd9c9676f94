"""Research throughput: verified experiments per agent-hour with N offline search agents.

Runs the orchestrator (in-process server, one process per agent, the verification worker as a process)
for a few minutes on the default task and reports verified results and dev submissions per agent-hour
(target: ≥ 100 verified per agent-hour), and where the time goes (the verification queue at the end).

    .venv/bin/python bench/research.py [--agents 2] [--minutes 3] [--verify-seeds 2] [--verify-workers 2]

Verification runs while the agents work and is *not* drained at the end (results still queued are
reported as ``left_queued``): the rate is the steady state. Two rates are printed: per agent-hour of agent
time (the sum of the agents' wall seconds, process start included) and per agent-hour of the run (agents ×
the wall time from the first agent's start to the last one's end).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from aarlab.agents.orchestrator import AgentState, ResearchBudget
from aarlab.lab.research import ResearchConfig, run_research
from aarlab.lab.server import default_run_dir
from aarlab.render import Col, console_for, emit, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--verify-seeds", type=int, default=2)
    ap.add_argument("--verify-workers", type=int, default=None, help="default: one per core (at most 4)")
    ap.add_argument("--task", default=None)
    ap.add_argument("--proposals-per-round", type=int, default=6)
    ap.add_argument(
        "--max-submissions",
        type=int,
        default=5000,
        help="dev submissions per agent (also the server's dev budget; its default, 200, is used up by a "
        "search agent in under a minute)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    console = Console(stderr=True)
    marks: dict[str, float] = {}
    t0 = time.monotonic()

    def update(states: list[AgentState]) -> None:
        if "agents_done" not in marks and all(s.done for s in states):
            marks["agents_done"] = time.monotonic() - t0

    def started(_server: Any) -> None:
        marks["setup"] = time.monotonic() - t0

    cfg = ResearchConfig(
        agents=args.agents,
        task=args.task,
        budget=ResearchBudget(
            hours=args.minutes / 60,
            proposals_per_round=args.proposals_per_round,
            max_submissions=args.max_submissions,
        ),
        verify_seeds=args.verify_seeds,
        drain=False,  # the steady state: what was verified while the agents worked
    )
    if args.verify_workers:
        cfg.verify_workers = args.verify_workers
    run_dir: Path = default_run_dir("bench-")
    with console.status(
        f"{args.agents} search agents for {args.minutes:g} min on {args.task or 'the default task'}"
    ):
        run, _ = run_research(cfg, run_dir=run_dir, on_update=update, on_server=started)
    total = time.monotonic() - t0
    agent_s = sum(a.seconds for a in run.agents)
    setup = marks.get("setup", 0.0)
    agents_done = marks.get("agents_done", total)
    run_agent_h = args.agents * (agents_done - setup) / 3600
    verified = run.verified
    subs = sum(a.submissions for a in run.agents)
    results = sum(len(a.results) for a in run.agents)
    distinct = len({json.dumps(r["config"], sort_keys=True) for r in run.leaderboard})
    figures = {
        "task": run.task,
        "agents": args.agents,
        "minutes": args.minutes,
        "verify_seeds": args.verify_seeds,
        "verify_workers": cfg.verify_workers,
        "cores": os.cpu_count(),
        "setup_s": round(setup, 1),
        "agents_s": round(agents_done - setup, 1),
        "drain_s": round(total - agents_done, 1),
        "total_s": round(total, 1),
        "agent_hours": round(agent_s / 3600, 4),
        "results": results,
        "verified": verified,
        "left_queued": run.queued,
        "verified_distinct_configs": distinct,
        "dev_submissions": subs,
        "verified_per_agent_hour": round(verified / (agent_s / 3600), 1) if agent_s else None,
        "verified_per_agent_hour_of_run": round(verified / run_agent_h, 1) if run_agent_h else None,
        "dev_submissions_per_agent_hour": round(subs / (agent_s / 3600), 1) if agent_s else None,
        "wall_s_per_verified": round((total - setup) / verified, 2) if verified else None,
    }
    if args.json:
        print(json.dumps(figures))
        return
    out = console_for()
    cols = [Col("figure", "id"), Col("value", "num", 0, "right")]
    rows = [[k, str(v)] for k, v in figures.items()]
    emit(out, table("research throughput (verified experiments per agent-hour)", cols, rows, out))


if __name__ == "__main__":
    main()

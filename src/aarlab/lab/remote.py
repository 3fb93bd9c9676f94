"""A research run against a running server (``aarlab research --server URL --token T``).

Everything goes through the server's API with an overseer's token: agents are registered with
``POST /api/v1/agents`` and their sandbox bundle comes from ``GET /api/v1/tasks/{task}/sandbox``; the
server's own ``aarlab verify`` worker verifies results. ``--data-dir`` is optional: when the server's data
directory is on this machine, naming it keeps it out of every agent's environment and LLM shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aarlab.agents.orchestrator import AgentState, attach_verified
from aarlab.lab.research import ResearchConfig, ResearchRun, leaderboard_json, orchestrator_for, plans_for
from aarlab.lab.server import default_run_dir
from aarlab.testbed.errors import AarlabError


def run_remote(
    cfg: ResearchConfig, task: str, t0: float, on_update: Callable[[list[AgentState]], None] | None
) -> ResearchRun:
    """Run ``cfg``'s agents on ``task`` at ``cfg.server``; ``t0`` (``time.monotonic()``) is when the run
    began. Raises AarlabError without ``cfg.token``, for a token that is not an overseer's, or for a task
    the server does not have (ServerError / ServerUnreachableError from the client otherwise)."""
    if not cfg.token:
        raise AarlabError(
            "--server needs --token (an overseer's token, from `aarlab admin add-agent NAME --role overseer`)"
        )
    from aarlab.api.client import Client

    url = cfg.server or ""
    with Client(url, cfg.token) as c:
        who = c.whoami()
        if who.role != "overseer":
            raise AarlabError(
                f"--token belongs to {who.name!r} ({who.role}); the orchestrator needs an overseer"
            )
        names = [t.name for t in c.tasks()]
        if task not in names:
            raise AarlabError(
                f"unknown task {task!r} on {cfg.server}; available: {', '.join(names) or '(none)'}"
            )
        existing = {a.name for a in c.agents()}
    run_dir = default_run_dir()
    plans, warnings = plans_for(cfg, existing)
    orch = orchestrator_for(
        cfg,
        url=url,
        token=cfg.token,
        task=task,
        run_dir=run_dir,
        plans=plans,
        on_update=on_update,
        server_paths=[cfg.data_dir] if cfg.data_dir is not None else [],
    )
    try:
        orch.register()
        states = orch.run()
        attach_verified(states, orch.client, task)
        return ResearchRun(
            task=task,
            server=url,
            data_dir=str(cfg.data_dir) if cfg.data_dir is not None else "",
            run_dir=str(run_dir),
            verification="the server's own worker (`aarlab verify --data-dir D`); rows appear as it verifies",
            agents=states,
            leaderboard=leaderboard_json(orch.client, task),
            seconds=time.monotonic() - t0,
            verified=0,
            warnings=warnings,
        )
    finally:
        orch.close()

"""A research run: N researcher agents against one server, their results verified, the leaderboard.

:func:`run_research` starts the evaluation server in this process (or joins a running one with
``cfg.server``: :mod:`aarlab.lab.remote`), registers and runs the agents (:mod:`aarlab.agents.orchestrator`,
over the API only), verifies results while they work (:mod:`aarlab.lab.verification`) and returns a
:class:`ResearchRun`. The CLI (``aarlab research``), the demo and bench/research.py use it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aarlab.agents.directions import Direction
from aarlab.agents.orchestrator import (
    AgentPlan,
    AgentState,
    Orchestrator,
    ResearchBudget,
    attach_verified,
    check_backend,
    make_plans,
)
from aarlab.lab.server import LocalServer, default_run_dir
from aarlab.lab.verification import VerifyLoop, VerifyProcess
from aarlab.testbed.errors import AarlabError


@dataclass
class ResearchConfig:
    """Everything ``aarlab research`` takes."""

    agents: int = 3
    backend: str = "search"
    task: str | None = None
    model: str | None = None
    base_url: str | None = None
    directions: list[Direction] | None = None
    budget: ResearchBudget = field(default_factory=ResearchBudget)
    executor: str = "local"
    address: str | None = None
    server: str | None = None
    token: str | None = None
    data_dir: Path | None = None
    seed: int = 0
    max_restarts: int = 2
    verify_seeds: int = 2
    #: Results verified at once (one BLAS thread each): one per core, so verification keeps up with the
    #: agents (which run at a lower scheduling priority).
    verify_workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    port: int = 0
    crash_attempts: dict[str, int] = field(default_factory=dict)
    extra_plans: list[AgentPlan] = field(default_factory=list)
    #: Verify what is still queued when the agents are done (False: leave it queued for a later
    #: `aarlab verify --data-dir D`; the benchmark measures the steady state this way).
    drain: bool = True
    #: ``module:function`` the verification worker process calls first (e.g. to register extra tasks).
    worker_setup: str | None = None
    #: Show counts and an ETA on stderr for the verification left after the agents finish.
    progress: bool = False


@dataclass
class ResearchRun:
    """What a run produced (``to_json`` is the CLI's ``--json`` object)."""

    task: str
    server: str
    data_dir: str
    run_dir: str
    verification: str
    agents: list[AgentState]
    leaderboard: list[dict[str, Any]]
    seconds: float
    verified: int
    warnings: list[str] = field(default_factory=list)
    queued: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "server": self.server,
            "data_dir": self.data_dir,
            "run_dir": self.run_dir,
            "verification": self.verification,
            "agents": [a.to_json() for a in self.agents],
            "leaderboard": self.leaderboard,
            "verified": self.verified,
            "queued": self.queued,
            "seconds": round(self.seconds, 2),
            "warnings": self.warnings,
        }


def resolve_task(cfg: ResearchConfig) -> str:
    """The task to run: ``cfg.task`` or the settings' default task."""
    from aarlab.config import get_settings

    return cfg.task or get_settings().default_task


def leaderboard_json(client: Any, task: str) -> list[dict[str, Any]]:
    """The task's leaderboard rows as JSON objects (what ``--json`` prints)."""
    return [row.model_dump(mode="json") for row in client.leaderboard(task)]


def plans_for(
    cfg: ResearchConfig, existing: Sequence[str] | set[str] = ()
) -> tuple[list[AgentPlan], list[str]]:
    """The run's agent plans (``cfg.agents`` of ``cfg.backend`` + ``cfg.extra_plans``) and warnings."""
    return make_plans(
        cfg.agents, cfg.backend, cfg.directions, seed=cfg.seed, extra=cfg.extra_plans, existing=existing
    )


def orchestrator_for(
    cfg: ResearchConfig,
    *,
    url: str,
    token: str,
    task: str,
    run_dir: Path,
    plans: Sequence[AgentPlan],
    on_update: Callable[[list[AgentState]], None] | None,
    server_paths: Sequence[Path] = (),
) -> Orchestrator:
    """The :class:`Orchestrator` for ``cfg`` against the server at ``url`` (an overseer's ``token``)."""
    return Orchestrator(
        url=url,
        overseer_token=token,
        task=task,
        run_dir=run_dir,
        plans=plans,
        budget=cfg.budget,
        executor=cfg.executor,
        address=cfg.address,
        model=cfg.model,
        base_url=cfg.base_url,
        max_restarts=cfg.max_restarts,
        crash_attempts=cfg.crash_attempts,
        on_update=on_update,
        server_paths=server_paths,
    )


def run_research(
    cfg: ResearchConfig,
    *,
    run_dir: Path | None = None,
    on_update: Callable[[list[AgentState]], None] | None = None,
    on_server: Callable[[LocalServer], None] | None = None,
    keep_server: bool = False,
) -> tuple[ResearchRun, LocalServer | None]:
    """Start (or join) a server, run the agents, verify their results, return the run.

    With ``keep_server`` the in-process server is returned still running (the demo keeps its dashboard
    up and runs the transfer gate on it); otherwise it is stopped and ``None`` is returned."""
    check_backend(cfg.backend, cfg.base_url)
    if cfg.agents < 1:
        raise AarlabError("--agents must be at least 1")
    t0 = time.monotonic()
    task = resolve_task(cfg)
    if cfg.server:
        from aarlab.lab.remote import run_remote

        return run_remote(cfg, task, t0, on_update), None
    from aarlab.server.datadir import init_task, task_names
    from aarlab.server.jobloop import count_results
    from aarlab.verify.executors import get_executor
    from aarlab.verify.runner import VerifySettings
    from aarlab.verify.sandbox import Limits

    task_name = server_task_name(task)
    run_dir = run_dir or default_run_dir()
    data_dir = cfg.data_dir or (run_dir / "server")
    if task_name not in task_names(data_dir):
        if not Path(task).is_dir():
            from aarlab.testbed.tasks import get_spec

            get_spec(task)  # an unknown task fails here, listing the built-in ones, before anything is made
        init_task(data_dir, task, name=task_name)
    server = LocalServer.start(data_dir, port=cfg.port, dev_budget=cfg.budget.max_submissions)
    verifier: Any = None
    loop: VerifyLoop | VerifyProcess | None = None
    orch: Orchestrator | None = None
    ok = False
    try:
        if on_server is not None:
            on_server(server)
        existing = {a.name for a in server_agents(server)}
        plans, warnings = plans_for(cfg, existing)
        orch = orchestrator_for(
            cfg,
            url=server.url,
            token=server.overseer_token,
            task=task_name,
            run_dir=run_dir,
            plans=plans,
            on_update=on_update,
            server_paths=[data_dir],
        )
        orch.register()
        # One BLAS thread per verification child: the cores are shared with N agents, and OpenBLAS's
        # spinning threads slow down badly on a loaded machine.
        settings = VerifySettings.for_seeds(cfg.verify_seeds, limits=Limits(threads=1))
        worker: VerifyLoop | VerifyProcess
        if cfg.executor == "ray":  # Ray tasks verify: a thread here only hands them out
            orch.init_ray()
            verifier = get_executor("ray")
            worker = VerifyLoop(server.state, data_dir, verifier, settings, batch=max(2, cfg.verify_workers))
        else:
            worker = VerifyProcess(
                server.state, data_dir, settings, workers=cfg.verify_workers, setup=cfg.worker_setup
            )
        loop = worker
        worker.start()
        states = orch.run()
        if cfg.drain:
            left = count_results(server.state.sessions, ("queued", "running"))
            if cfg.progress and left:
                from aarlab.render import Counter

                with Counter(f"verifying the {left} result(s) still queued", left) as counter:
                    verified = worker.drain(on_batch=counter.advance)
            else:
                verified = worker.drain()
        else:
            worker.stop()
            verified = worker.processed
        loop = None
        queued = count_results(server.state.sessions)
        attach_verified(states, orch.client, task_name)
        run = ResearchRun(
            task=task_name,
            server=server.url,
            data_dir=str(data_dir),
            run_dir=str(run_dir),
            verification=("worker thread handing jobs to Ray" if cfg.executor == "ray" else "worker process")
            + " (verify_pending while agents run; the rest drained at the end)",
            agents=states,
            leaderboard=leaderboard_json(orch.client, task_name),
            seconds=time.monotonic() - t0,
            verified=verified,
            warnings=warnings,
            queued=queued,
        )
        ok = True
    finally:
        if loop is not None:
            loop.stop()
        if verifier is not None:
            verifier.close()
        if orch is not None:
            orch.close()
        if not (keep_server and ok):
            server.stop()
    return run, (server if keep_server else None)


def server_task_name(task: str) -> str:
    """The name a task gets on the server: a built-in name as is, a directory by its folder name."""
    p = Path(task)
    return p.name if p.is_dir() else task


def server_agents(server: LocalServer) -> list[Any]:
    """Every agent registered on the in-process ``server`` (through its API)."""
    from aarlab.api.client import Client

    with Client(server.url, server.overseer_token) as c:
        return c.agents()

"""``aarlab research``: N researcher agents with distinct directions in parallel, their results verified,
the leaderboard (with the evaluation server in this process, or joining a running one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aarlab.cli.common import console, friendly, live_agents, out
from aarlab.cli.tables import agents_table, leaderboard_table
from aarlab.render import emit, plain
from aarlab.testbed.errors import AarlabError


def research(
    agents: Annotated[int, typer.Option("--agents", min=1, help="number of researcher agents")] = 3,
    backend: Annotated[str, typer.Option(help="search (offline, no LLM), anthropic or openai")] = "search",
    task: Annotated[str | None, typer.Option(help="task name or reference-format directory")] = None,
    model: Annotated[str | None, typer.Option(help="LLM model (default: the backend's)")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint (vLLM, Ollama)")] = None,
    directions: Annotated[
        Path | None, typer.Option(help="YAML/JSON list of {name, summary, axes, start} directions")
    ] = None,
    hours: Annotated[float, typer.Option(help="wall budget per agent, in hours")] = 1.0,
    max_tokens: Annotated[int | None, typer.Option(help="LLM tokens per agent (in + out)")] = None,
    max_dollars: Annotated[float | None, typer.Option(help="LLM dollars per agent")] = None,
    max_submissions: Annotated[int | None, typer.Option(help="dev submissions per agent")] = None,
    rounds: Annotated[
        int,
        typer.Option(
            min=0,
            help="search backend: rounds per agent, each ending in at most one new result (0: until a "
            "budget runs out; a search agent makes a result every 1-3 s, far faster than verification)",
        ),
    ] = 3,
    executor: Annotated[
        str, typer.Option(help="local (a process per agent) or ray (a Ray task per agent)")
    ] = ("local"),
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start Ray here)")] = None,
    server: Annotated[str | None, typer.Option(help="join a running server at this URL")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="AARLAB_TOKEN", help="with --server: an overseer's token")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="server data dir (default: a new one under $AARLAB_HOME/runs)")
    ] = None,
    seed: Annotated[int, typer.Option(help="first agent's seed (agent i gets seed + i)")] = 0,
    max_restarts: Annotated[int, typer.Option(min=0, help="restarts of a crashed agent")] = 2,
    verify_seeds: Annotated[int, typer.Option(min=1, help="verification seeds per result")] = 2,
    verify_workers: Annotated[
        int | None, typer.Option(min=1, help="results verified at once (default: one per core, at most 4)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (no live display)")] = False,
) -> None:
    """Run N researcher agents with distinct directions in parallel, verify their results, print the
    leaderboard. Without --server the evaluation server runs in this process (SQLite)."""
    from aarlab.agents.orchestrator import ResearchBudget, check_backend, load_directions
    from aarlab.lab.research import ResearchConfig, run_research

    if backend not in ("search", "anthropic", "openai"):
        raise AarlabError(f"unknown backend {backend!r}; available: search, anthropic, openai")
    check_backend(backend, base_url)  # before anything starts
    if executor not in ("local", "ray"):
        raise AarlabError(f"unknown executor {executor!r}; available: local, ray")
    if data_dir is not None:
        from aarlab.server.datadir import require_data_dir

        if server:  # a running server's data dir: it must be one
            require_data_dir(data_dir)
        elif data_dir.exists() and not data_dir.is_dir():
            require_data_dir(data_dir)  # says it is a file
    dirs = load_directions(directions, backend=backend) if directions else None
    cfg = ResearchConfig(
        agents=agents,
        backend=backend,
        task=task,
        model=model,
        base_url=base_url,
        directions=dirs,
        budget=ResearchBudget(
            hours=hours,
            max_tokens=max_tokens,
            max_dollars=max_dollars,
            max_submissions=max_submissions,
            rounds=rounds or None,
        ),
        executor=executor,
        address=address,
        server=server,
        token=token,
        data_dir=data_dir,
        seed=seed,
        max_restarts=max_restarts,
        verify_seeds=verify_seeds,
        progress=not as_json,
    )
    if verify_workers:
        cfg.verify_workers = verify_workers
    live, update = live_agents(not as_json)

    def announce(srv: Any) -> None:
        if not as_json:
            console.print(f"server: {srv.url} (data dir {srv.data_dir})", highlight=False)

    with live:
        run, _ = run_research(cfg, on_update=update, on_server=announce)
    if not as_json and plain(console):
        console.line()  # the live view's last frame ends without a newline off a terminal
    data = run.to_json()
    if as_json:
        print(json.dumps(data))
        return
    for w in run.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    emit(out, agents_table(data["agents"], "agents", out))
    title = f"leaderboard — {run.task} (verified scores only; 95% CIs)"
    emit(out, leaderboard_table(data["leaderboard"], title, out))
    out.print(f"verification: {run.verification}; run folder {run.run_dir}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.command()(friendly(research))

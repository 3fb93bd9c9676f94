"""``aarlab demo``: the whole lab in one command, and how its result is printed (:func:`print_demo`)."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from aarlab.cli.common import console, friendly, live_agents, out
from aarlab.cli.tables import agents_table, flags_table, leaderboard_table, verdicts_table
from aarlab.render import emit, plain

if TYPE_CHECKING:  # the lab loads the server and the testbed: only when the demo runs
    from aarlab.lab.demo import DemoResult


def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="small task, fewer agents and seeds (~1-2 min)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (progress off)")] = False,
    agents: Annotated[
        int | None, typer.Option(min=1, help="search researchers (default 3 quick, 4 full) + 1 red-team")
    ] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="server port (0: any free port)")] = 0,
    hold: Annotated[
        float | None,
        typer.Option(
            help="keep the dashboard up this many seconds after finishing (default 60; 0 with --json); "
            "Ctrl-C ends"
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="task name or reference-format directory (default: the profile's task)"),
    ] = None,
) -> None:
    """The main job: server + dashboard, search researchers and a red-team agent in parallel, verified
    leaderboard, flags, the transfer gate's verdict and every agent's usage."""
    import time

    from aarlab.lab.demo import run_demo

    live, update = live_agents(not as_json)

    def started(_server: Any, url: str) -> None:
        console.print(f"dashboard: [bold]{url}[/]", highlight=False, soft_wrap=True)

    def stage(msg: str) -> None:
        if not as_json:
            console.print(f"[dim]{msg}[/]", highlight=False)

    with live:
        result, server = run_demo(
            quick=quick,
            agents=agents,
            port=port,
            on_server=started,
            on_update=update,
            on_stage=stage,
            keep_server=True,
            show_progress=not as_json,
            task=task,
        )
    if not as_json and plain(console):
        console.line()  # the live view's last frame ends without a newline off a terminal
    assert server is not None
    try:
        if as_json:
            print(json.dumps(result.to_json()))
        else:
            print_demo(result, out)
            out.print(f"run folder: {result.run_dir}", highlight=False, soft_wrap=True)
        wait = hold if hold is not None else (0.0 if as_json else 60.0)
        if wait > 0:
            console.print(
                f"dashboard stays up for {wait:.0f} s at {result.dashboard} (Ctrl-C ends)",
                highlight=False,
                soft_wrap=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(wait)
    finally:
        server.stop()


def print_demo(result: DemoResult, console: Console) -> None:
    """Leaderboard (ranked rows, then rows pending review), flags, the red-team verdict, transfer-gate
    verdicts and usage as tables that fit ``console`` (plain and wide off a terminal)."""
    r = result.to_json()
    board = r["leaderboard"] + r.get("pending_review", [])
    title = f"leaderboard — {r['task']} (verified scores only; 95% CIs)"
    emit(console, leaderboard_table(board, title, console))
    emit(console, flags_table(r["flags"], "review queue (open flags)", console))
    rt = r["redteam"]
    mark = "[green]caught[/]" if rt["flagged"] else "[red]NOT caught[/]"
    console.print(
        f"red-team agent {rt['agent']!r}: {mark} ({', '.join(rt['flag_kinds']) or 'no flags'})",
        highlight=False,
    )
    emit(console, verdicts_table(r["verdicts"], "transfer gate", console))
    emit(console, agents_table(r["agents"], "agents' usage (as recorded on the server)", console))
    t = r["timings"]
    console.print(
        f"done in {t.get('total', 0):.0f} s (setup {t.get('setup', 0):.0f} s, agents + verification "
        f"{t.get('agents_and_verification', 0):.0f} s, transfer gate {t.get('transfer', 0):.0f} s)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.command()(friendly(demo))

"""The overseers' review commands, ``aarlab review list|show|dismiss|disqualify|reveal``: a client of a
running server over the HTTP API (:class:`aarlab.api.client.Client`), never of its database.

They live apart from :mod:`aarlab.server.cli` because the server implements the API and never imports
its client; registered on the main ``aarlab`` app by :func:`register`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer

from aarlab.render import typer_app

if TYPE_CHECKING:  # the HTTP client (httpx) loads only when a review command runs: `aarlab` starts faster
    from aarlab.api.client import Client
    from aarlab.api.schemas import FlagOut, FlagStatus

ServerUrl = Annotated[str, typer.Option("--server", envvar="AARLAB_SERVER", help="server URL")]
Token = Annotated[str, typer.Option("--token", envvar="AARLAB_TOKEN", help="an overseer's token")]
Note = Annotated[str, typer.Option("--note", help="why (kept with the flag and the result)")]
FlagArg = Annotated[int, typer.Argument(help="the flag's id (see `aarlab review list`)")]

review_app = typer_app(help="The review queue of detector flags (overseers only).", no_args_is_help=True)



def _client(server: str, token: str) -> Client:
    from aarlab.api.client import Client

    return Client(server, token)

def _show_flag(f: FlagOut, evidence: bool = False) -> None:
    target = f"result {f.result_id} ({f.result_status})" if f.result_id is not None else "dev log"
    typer.echo(f"#{f.id} [{f.severity}] {f.kind} — {f.agent} / {f.task} / {target} — {f.status}")
    typer.echo(f"    {f.summary}")
    if f.status != "open":
        typer.echo(f"    resolved by {f.resolved_by}: {f.note}")
    if evidence:
        typer.echo(json.dumps(f.evidence, indent=2)[:20000])


def review_list(
    server: ServerUrl,
    token: Token,
    status: Annotated[str, typer.Option(help="open, dismissed, disqualified or all")] = "open",
    task: Annotated[str | None, typer.Option(help="only flags of this task (default: every task)")] = None,
) -> None:
    """List flags (open ones by default)."""
    with _client(server, token) as c:
        rows = c.flags(None if status == "all" else cast("FlagStatus", status), task)
    for f in rows:
        _show_flag(f)
    if not rows:
        typer.echo(f"no {status} flags")


def review_show(flag_id: FlagArg, server: ServerUrl, token: Token) -> None:
    """One flag with its evidence."""
    with _client(server, token) as c:
        _show_flag(c.flag(flag_id), evidence=True)


def _resolve(
    action: Literal["dismiss", "disqualify"], flag_id: int, note: str, server: str, token: str
) -> None:
    with _client(server, token) as c:
        fn = c.dismiss_flag if action == "dismiss" else c.disqualify_flag
        _show_flag(fn(flag_id, note))


def review_dismiss(flag_id: FlagArg, note: Note, server: ServerUrl, token: Token) -> None:
    """Close a flag as a false alarm."""
    _resolve("dismiss", flag_id, note, server, token)


def review_disqualify(flag_id: FlagArg, note: Note, server: ServerUrl, token: Token) -> None:
    """Disqualify the flagged result (or, for a dev-log flag, the agent's results on that task)."""
    _resolve("disqualify", flag_id, note, server, token)


def reveal_cmd(
    task: Annotated[str, typer.Argument(help="the task to reveal")], server: ServerUrl, token: Token
) -> None:
    """The final reveal (Kaggle's private board): every caller sees the task's sealed figures from now on."""
    with _client(server, token) as c:
        r = c.reveal(task)
    typer.echo(
        f"revealed the private board of {r.task} (by {r.revealed_by}, {r.created_at:%Y-%m-%d %H:%M} UTC)"
    )


def register(app: typer.Typer, friendly: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Add ``aarlab review ...`` to the main CLI (``friendly`` turns user errors into one line)."""
    commands: dict[str, Callable[..., None]] = {
        "list": review_list,
        "show": review_show,
        "dismiss": review_dismiss,
        "disqualify": review_disqualify,
        "reveal": reveal_cmd,
    }
    for name, fn in commands.items():
        review_app.command(name)(friendly(fn))
    app.add_typer(review_app, name="review")

"""What every ``aarlab`` command shares: the Typer app, the two consoles, and :func:`friendly`, which
turns user errors into one line and exit code 2 (never a traceback)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.markup import escape

from aarlab.render import console_for, typer_app
from aarlab.testbed.errors import AarlabError

app = typer_app(
    help="aarlab: automated alignment research on weak-to-strong supervision. "
    "Start with `aarlab demo --quick` (about 1-2 minutes; prints a dashboard URL).",
    no_args_is_help=True,
)
#: Progress, warnings and errors (stderr); tables and results go to ``out`` (stdout).
console = console_for(stderr=True)
out = console_for()
F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("aarlab")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
            v = "unknown (not installed)"
        typer.echo(f"aarlab {v} (Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """aarlab: automated alignment research on weak-to-strong supervision. Start with
    `aarlab demo --quick` (about 1-2 minutes; prints a dashboard URL)."""


def friendly(fn: F) -> F:
    """Turn user errors into one red line and exit code 2: AarlabError (its message says what to fix),
    and an OSError about a path (the path and the reason). Every command goes through it, so error
    handling lives here, not in each command."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AarlabError as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except ValidationError as e:
            prefix = _settings_env_prefix(e.title)
            if prefix is None:  # not a setting the user gave: a bug, keep the traceback
                raise
            console.print(
                f"[bold red]error:[/] {escape(settings_message(e, prefix))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None
        except OSError as e:
            if e.filename is None:  # not about a path the user gave: a bug, keep the traceback
                raise
            # a path the user gave that cannot be used (missing, a file for a folder, permissions)
            where = f"{e.filename} -> {e.filename2}" if e.filename2 else str(e.filename)
            console.print(
                f"[bold red]error:[/] {escape(where)}: {escape(e.strerror or str(e))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _settings_env_prefix(title: str) -> str | None:
    """The environment prefix of the settings class a ValidationError is about (None: not settings)."""
    from aarlab.config import Settings
    from aarlab.server.settings import ServerSettings

    classes = {c.__name__: c for c in (Settings, ServerSettings)}
    return str(classes[title].model_config.get("env_prefix", "")) if title in classes else None


def settings_message(e: ValidationError, prefix: str) -> str:
    """One line per bad setting: its name, the environment variable that sets it, the value and why."""
    parts = []
    for err in e.errors():
        name = ".".join(str(x) for x in err.get("loc", ()))
        value = err.get("input")
        parts.append(f"setting {name} ({prefix}{name.upper()}) = {value!r}: {err.get('msg')}")
    return "; ".join(parts) + ". Fix or unset the variable"


def parse_config(config: str | None) -> dict[str, Any] | None:
    """``--config`` as a dict (None when not given); raises AarlabError for bad JSON or a non-object."""
    if not config:
        return None
    try:
        value = json.loads(config)
    except json.JSONDecodeError as e:
        raise AarlabError(
            f"--config is not valid JSON ({e.msg}); example: --config '{{\"keep_fraction\": 0.3}}'"
        ) from None
    if not isinstance(value, dict):
        raise AarlabError("--config must be a JSON object, e.g. '{\"C\": 0.01}'")
    return value


def live_agents(enabled: bool) -> tuple[Any, Callable[[list[Any]], None]]:
    """A rich Live display of the agents on stderr (or nothing), and the callback that refreshes it
    with the current ``AgentState`` list (at most twice a second, and at the end)."""
    import time
    from contextlib import nullcontext

    from rich.live import Live

    from aarlab.cli.tables import agents_table

    if not enabled:
        return nullcontext(), lambda _states: None
    live = Live(console=console, refresh_per_second=2, transient=False)
    last = [0.0]

    def update(states: list[Any]) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or all(s.done for s in states):
            last[0] = now
            title = "agents (best dev: Ladder-reported; verified: re-executed)"
            live.update(agents_table([s.to_json() for s in states], title, console))

    return live, update

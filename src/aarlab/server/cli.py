"""Server commands: ``serve``, ``admin add-agent``, ``server init-task`` and ``export-sandbox``.

Registered on the main ``aarlab`` app by :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

DataDir = Annotated[Path, typer.Option("--data-dir", help="the server's data directory (holds labels)")]
DbUrl = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite in the data dir)")]

admin_app = typer.Typer(help="Server administration: agents and tokens.", no_args_is_help=True)
server_app = typer.Typer(
    help="Server data: tasks with labels, held by the server only.", no_args_is_help=True
)


def serve(
    data_dir: DataDir,
    db: DbUrl = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the evaluation server (OpenAPI docs at /docs)."""
    import uvicorn

    from aarlab.server.app import create_app
    from aarlab.server.settings import ServerSettings

    uvicorn.run(
        create_app(ServerSettings(data_dir=data_dir, db_url=db)), host=host, port=port, log_level="warning"
    )


def add_agent_cmd(
    name: Annotated[str, typer.Argument(help="unique agent name")],
    data_dir: DataDir,
    db: DbUrl = None,
    role: Annotated[str, typer.Option(help="agent or overseer")] = "agent",
) -> None:
    """Create an agent and print its token (shown once; only its hash is stored)."""
    from aarlab.server.auth import add_agent
    from aarlab.server.db import make_engine, migrate, session_factory, session_scope
    from aarlab.server.settings import ServerSettings

    settings = ServerSettings(data_dir=data_dir, db_url=db)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    migrate(engine)
    with session_scope(session_factory(engine)) as session:
        token = add_agent(session, name, role)
    engine.dispose()
    typer.echo(token)


def init_task_cmd(
    data_dir: DataDir,
    task: Annotated[str, typer.Option("--task", help="built-in task name or reference-format directory")],
    name: Annotated[str | None, typer.Option(help="name on the server (default: the task's)")] = None,
) -> None:
    """Materialise a task with its labels into the data directory (creates the split secret once)."""
    from aarlab.server.datadir import init_task

    out = init_task(data_dir, task, name=name)
    typer.echo(f"task {out.name!r} stored in {out}")


def export_sandbox_cmd(
    out: Annotated[Path, typer.Argument(help="new folder for the bundle")],
    data_dir: DataDir,
    task: Annotated[str, typer.Option("--task")],
) -> None:
    """Write the label-free bundle a researcher's sandbox gets (inputs, weak labels, manifest)."""
    from aarlab.server.sandbox import export_sandbox

    export_sandbox(data_dir, task, out, show_progress=True)
    typer.echo(f"bundle written to {out}")


def register(app: typer.Typer, friendly: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Add the server commands to the main CLI (``friendly`` turns user errors into one line)."""
    app.command("serve")(friendly(serve))
    app.command("export-sandbox")(friendly(export_sandbox_cmd))
    admin_app.command("add-agent")(friendly(add_agent_cmd))
    server_app.command("init-task")(friendly(init_task_cmd))
    app.add_typer(admin_app, name="admin")
    app.add_typer(server_app, name="server")

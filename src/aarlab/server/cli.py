"""Server commands: ``serve``, ``admin add-agent``, ``server init-task``, ``export-sandbox`` and the
verification worker ``verify``. They work on the server's data directory and database directly; the
overseers' ``review`` commands talk to a running server over HTTP and live in :mod:`aarlab.cli.review`.

Registered on the main ``aarlab`` app by :func:`register`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from aarlab.render import typer_app

DataDir = Annotated[Path, typer.Option("--data-dir", help="the server's data directory (holds labels)")]
DbUrl = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite in the data dir)")]

admin_app = typer_app(help="Server administration: agents and tokens.", no_args_is_help=True)
server_app = typer_app(help="Server data: tasks with labels, held by the server only.", no_args_is_help=True)


def serve(
    data_dir: DataDir,
    db: DbUrl = None,
    host: Annotated[
        str, typer.Option(help="interface to listen on (0.0.0.0: every interface)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port)")] = 8000,
) -> None:
    """Run the evaluation server; prints where it listens, the dashboard login and the API docs."""
    import uvicorn

    from aarlab.server.app import create_app
    from aarlab.server.datadir import require_data_dir
    from aarlab.server.serve_banner import banner
    from aarlab.server.settings import ServerSettings

    require_data_dir(data_dir)
    settings = ServerSettings(data_dir=data_dir, db_url=db)
    app = create_app(settings)

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            bound = [s.getsockname() for srv in getattr(self, "servers", []) for s in srv.sockets]
            actual = int(bound[0][1]) if bound else port
            typer.echo(banner(app, host, actual, data_dir, db))

    AnnouncingServer(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()


def add_agent_cmd(
    name: Annotated[str, typer.Argument(help="unique agent name")],
    data_dir: DataDir,
    db: DbUrl = None,
    role: Annotated[str, typer.Option(help="agent or overseer")] = "agent",
) -> None:
    """Create an agent and print its token (shown once; only its hash is stored)."""
    from aarlab.server.auth import add_agent
    from aarlab.server.datadir import require_data_dir
    from aarlab.server.db import make_engine, migrate, session_factory, session_scope
    from aarlab.server.settings import ServerSettings

    settings = ServerSettings(data_dir=require_data_dir(data_dir), db_url=db)
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
    for w in json.loads((out / "task.json").read_text()).get("data_warnings", []):
        typer.echo(f"warning: {w}", err=True)


def export_sandbox_cmd(
    out: Annotated[Path, typer.Argument(help="new folder for the bundle")],
    data_dir: DataDir,
    task: Annotated[str, typer.Option("--task", help="task name on the server")],
) -> None:
    """Write the label-free bundle a researcher's sandbox gets (inputs, weak labels, manifest)."""
    from aarlab.server.datadir import require_data_dir
    from aarlab.server.sandbox import export_sandbox

    require_data_dir(data_dir)
    export_sandbox(data_dir, task, out, show_progress=True)
    typer.echo(f"bundle written to {out}")


def verify_cmd(
    data_dir: DataDir,
    db: DbUrl = None,
    executor: Annotated[str, typer.Option(help="local (threads) or ray")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start Ray here)")] = None,
    once: Annotated[bool, typer.Option("--once", help="verify what is queued now, then exit")] = False,
    poll: Annotated[float, typer.Option(min=0.1, help="seconds between looks at the queue")] = 5.0,
    seeds: Annotated[int, typer.Option(min=1, help="verification seeds per result")] = 3,
    requeue: Annotated[
        bool, typer.Option("--requeue", help="first requeue results a dead worker left 'running'")
    ] = False,
    transfers: Annotated[
        bool, typer.Option("--transfers/--no-transfers", help="also run queued transfer-gate requests")
    ] = True,
    gate_seeds: Annotated[
        int | None,
        typer.Option(min=2, help="transfer-gate seeds per suite (default: each suite's registered seeds)"),
    ] = None,
) -> None:
    """Verification worker: re-execute queued results, store verified scores and flags; then run the
    transfer gate for results an overseer queued (`POST /api/v1/results/{id}/transfer`)."""
    from contextlib import ExitStack

    from aarlab.render import Counter
    from aarlab.server.codestore import CodeStore
    from aarlab.server.datadir import require_data_dir
    from aarlab.server.db import make_engine, migrate, session_factory
    from aarlab.server.jobloop import JobQueue, job_loop
    from aarlab.server.settings import ServerSettings
    from aarlab.server.transfer_worker import transfer_pending
    from aarlab.transfer.gate import DEFAULT_SUITES, GateSettings
    from aarlab.verify.executors import get_executor
    from aarlab.verify.gate_runs import prepare_suites_in_background
    from aarlab.verify.runner import VerifySettings

    require_data_dir(data_dir)
    settings = ServerSettings(data_dir=data_dir, db_url=db)
    engine = make_engine(settings.database_url)
    migrate(engine)
    options = {"address": address} if executor == "ray" and address else {}
    ex = get_executor(executor, **options)
    vs = VerifySettings.for_seeds(seeds)
    store = CodeStore(settings.code_url, settings.storage_options)
    gate = GateSettings(
        suites=[
            s if gate_seeds is None else s.model_copy(update={"seeds": list(range(100, 100 + gate_seeds))})
            for s in DEFAULT_SUITES
        ]
    )
    queue = JobQueue(
        session_factory(engine),
        data_dir,
        ex,
        store=store,
        settings=vs,
        batch=max(2, int(getattr(ex, "workers", 2))),
        ladder_step=settings.ladder_step,
    )
    if requeue:
        typer.echo(f"requeued {queue.requeue_running()} result(s) left running")
    if transfers and not once:  # a long-running worker encodes the gate's suites while it verifies (#16)
        prepare_suites_in_background(gate.suites)
    progress = ExitStack()  # the counts and ETA of one burst, on stderr
    counter: list[Counter] = []

    def burst(queued: int) -> None:
        counter[:] = [progress.enter_context(Counter(f"verifying {queued} queued result(s)", queued))]

    def batch(n: int) -> None:
        c = counter[0]
        c.total = max(c.total, c.done + n)  # results queued meanwhile are verified too
        c.advance(n)

    def idle(n: int) -> None:
        progress.close()
        if n:
            typer.echo(f"verified {n} result(s)")
        if transfers:
            done = transfer_pending(session_factory(engine), data_dir, settings=gate, store=store)
            if done:
                typer.echo(f"ran the transfer gate for {len(done)} request(s)")
        if once and not n:
            typer.echo(f"nothing queued to verify in {data_dir}")

    try:
        job_loop(queue, poll=poll, once=once, on_burst=burst, on_batch=batch, on_idle=idle)
    finally:
        progress.close()
        ex.close()
        engine.dispose()


def register(app: typer.Typer, friendly: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Add the server commands to the main CLI (``friendly`` turns user errors into one line)."""
    app.command("serve")(friendly(serve))
    app.command("export-sandbox")(friendly(export_sandbox_cmd))
    app.command("verify")(friendly(verify_cmd))
    admin_app.command("add-agent")(friendly(add_agent_cmd))
    server_app.command("init-task")(friendly(init_task_cmd))
    app.add_typer(admin_app, name="admin")
    app.add_typer(server_app, name="server")

"""The evaluation server in this process, for the lab's research runs and the demo."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aarlab.testbed.errors import AarlabError


@dataclass
class LocalServer:
    """The evaluation server in this process: SQLite in ``data_dir``, uvicorn on a real port (so agent
    processes and a browser can reach it), and an overseer token for the orchestrator."""

    data_dir: Path
    url: str
    port: int
    overseer_token: str
    app: Any
    _server: Any
    _thread: threading.Thread

    @property
    def state(self) -> Any:
        return self.app.state.aarlab

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        dev_budget: int | None = None,
        overseer: str = "overseer",
    ) -> LocalServer:
        import uvicorn

        from aarlab.server.app import create_app
        from aarlab.server.auth import add_agent
        from aarlab.server.db import session_scope
        from aarlab.server.settings import ServerSettings

        # A rate limit well above what N agents on one machine can produce: budgets cap them instead;
        # with a submission cap the server's own per-agent dev budget enforces it.
        # Results likewise (the lab's own search agents submit one per round; --rounds caps them).
        settings = ServerSettings(
            data_dir=data_dir, rate_per_minute=600, result_rate_per_minute=600, result_budget=10_000
        )
        if dev_budget:
            settings = settings.model_copy(update={"dev_budget": dev_budget})
        app = create_app(settings)
        with session_scope(app.state.aarlab.sessions) as s:
            name, k = overseer, 1
            from sqlalchemy import select

            from aarlab.server.models import Agent

            while s.scalar(select(Agent).where(Agent.name == name)) is not None:
                k += 1
                name = f"{overseer}-{k}"
            token = add_agent(s, name, "overseer")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            raise AarlabError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        t0 = time.monotonic()
        while not server.started:
            if not thread.is_alive() or time.monotonic() - t0 > 30:
                raise AarlabError("the in-process server did not start (see the log above)")
            time.sleep(0.05)
        return cls(data_dir, f"http://{host}:{port}", port, token, app, server, thread)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.state.engine.dispose()


def default_run_dir(prefix: str = "") -> Path:
    """A new run folder ``$AARLAB_HOME/runs/{prefix}{UTC timestamp}`` (not created)."""
    from aarlab.config import get_settings

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return get_settings().home / "runs" / f"{prefix}{stamp}"

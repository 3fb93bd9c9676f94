"""A throwaway PostgreSQL cluster (initdb + pg_ctl on a temp dir and a free port) for tests and benchmarks.

initdb refuses to run as root, so as root the binaries run as the ``postgres`` user via ``runuser``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from types import TracebackType

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_reason() -> str | None:
    """Why a temp cluster cannot start here, or None when it can."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        return f"PostgreSQL 15 binaries not found in {PG_BIN} (apt-get install postgresql-15)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb refuses to run as root"
    return None


def _run(args: list[str]) -> None:
    cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class TempPostgres:
    """``with TempPostgres() as pg: pg.url`` is ``postgresql://postgres@127.0.0.1:PORT`` (no database)."""

    def __init__(self) -> None:
        self.base = Path(f"/tmp/aarlab-pg-{uuid.uuid4().hex[:8]}")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"

    def __enter__(self) -> TempPostgres:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        self.base.mkdir(mode=0o777)
        os.chmod(self.base, 0o777)  # the postgres user must write here
        data = self.base / "data"
        _run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"])
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=200"
        _run(
            [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(self.base / "log"), "-w", "-o", opts, "start"]
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            _run([str(PG_BIN / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url}/{name}"

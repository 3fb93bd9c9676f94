"""`aarlab serve` says where it listens and how to log in, and what it prints is true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from aarlab.server.auth import add_agent
from aarlab.server.db import make_engine, migrate, session_factory, session_scope


def _serve(data_dir: Path, db: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aarlab.cli", "serve", "--data-dir", str(data_dir), "--db", db, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Ctrl-C stops the server" in line:
            return proc, lines
    proc.kill()
    raise AssertionError("no banner: " + "\n".join(lines))


def test_serve_prints_where_it_listens_and_how_to_log_in(data_dir: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    proc, lines = _serve(data_dir, db)
    try:
        text = "\n".join(lines)
        url = re.search(r"listening on (http://127\.0\.0\.1:(\d+))", text)
        assert url and url.group(2) != "0", text  # the real port, even with --port 0
        base = url.group(1)
        assert f"dashboard: {base}/ui/login" in text and f"{base}/docs" in text
        assert f"aarlab admin add-agent boss --role overseer --data-dir {data_dir} --db {db}" in text
        assert httpx.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
        assert httpx.get(base + "/docs", timeout=5).status_code == 200
        assert httpx.get(base + "/ui/login", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
    # with an overseer registered, the banner says so instead of how to create the first one
    engine = make_engine(db)
    migrate(engine)
    with session_scope(session_factory(engine)) as s:
        add_agent(s, "boss", "overseer")
    engine.dispose()
    proc, lines = _serve(data_dir, db)
    try:
        text = "\n".join(lines)
        assert "1 overseer(s) registered" in text and "no overseer yet" not in text
        assert "aar_" not in text  # a token is never printed by serve
    finally:
        proc.terminate()
        proc.wait(20)

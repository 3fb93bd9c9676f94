"""What ``aarlab serve`` prints once it listens: the URLs and how to log in to the dashboard."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import func, select

from aarlab.server.db import session_scope
from aarlab.server.models import Agent


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def banner(app: FastAPI, host: str, port: int, data_dir: Path, db: str | None) -> str:
    """Lines telling where the server listens and how to log in (counts overseers to say which step is
    next). Never prints a token: tokens are shown once, by ``aarlab admin add-agent``."""
    base = f"http://{_display_host(host)}:{port}"
    with session_scope(app.state.aarlab.sessions) as s:
        overseers = s.scalar(select(func.count()).select_from(Agent).where(Agent.role == "overseer")) or 0
    db_opt = f" --db {db}" if db else ""
    lines = [
        f"aarlab server listening on {base}"
        + (f" (all interfaces: {host})" if host in ("0.0.0.0", "::") else ""),
        f"  dashboard: {base}/ui/login   (paste an overseer's or agent's token)",
        f"  API docs:  {base}/docs  and  {base}/redoc   (offline)",
        f"  data dir:  {data_dir}",
    ]
    if not overseers:
        lines.append(
            "  no overseer yet: create one (its token is printed once) with\n"
            f"    aarlab admin add-agent boss --role overseer --data-dir {data_dir}{db_opt}"
        )
    else:
        lines.append(
            f"  {overseers} overseer(s) registered; a new token: aarlab admin add-agent NAME --role overseer "
            f"--data-dir {data_dir}{db_opt}"
        )
    lines.append("  log in straight away with " + base + "/ui/login?token=TOKEN ; Ctrl-C stops the server")
    return "\n".join(lines)

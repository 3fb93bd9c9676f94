"""`aarlab review` against a real server process, and `aarlab verify --once` on an empty queue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from aarlab.cli import app
from aarlab.server.auth import add_agent
from aarlab.server.db import make_engine, migrate, session_factory, session_scope
from aarlab.server.models import Agent, Result, ReviewFlag, Snapshot, VerifiedScore
from aarlab.server.pgtemp import free_port
from conftest import wait_for

TASK = "tiny-cities"
runner = CliRunner()


def _seed(db_url: str) -> tuple[str, str, int]:
    """An overseer, an agent with one verified result, and one open flag on it."""
    engine = make_engine(db_url)
    migrate(engine)
    with session_scope(session_factory(engine)) as s:
        boss, alice = add_agent(s, "boss", "overseer"), add_agent(s, "alice")
        agent = s.query(Agent).filter_by(name="alice").one()
        s.add(Snapshot(sha256="a" * 64, size=1, agent_id=agent.id))
        s.flush()
        r = Result(
            agent_id=agent.id, task=TASK, snapshot_sha="a" * 64, config={}, claimed={}, status="verified"
        )
        s.add(r)
        s.flush()
        s.add(VerifiedScore(result_id=r.id, task=TASK, dev_acc=0.7, sealed_acc=0.7))
        f = ReviewFlag(
            result_id=r.id,
            agent_id=agent.id,
            task=TASK,
            kind="audit/network",
            severity="high",
            summary="1 network event(s)",
            evidence={"events": [{"event": "network"}]},
            status="open",
        )
        s.add(f)
        s.flush()
        flag_id = f.id
    engine.dispose()
    return boss, alice, flag_id


def test_review_cli_lists_shows_and_resolves(data_dir: Path, db_url: str) -> None:
    boss, alice, flag_id = _seed(db_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "aarlab.cli", "serve", "--data-dir", str(data_dir), "--db", db_url]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(url)
        env = {"AARLAB_SERVER": url, "AARLAB_TOKEN": boss}
        out = runner.invoke(app, ["review", "list"], env=env)
        assert out.exit_code == 0, out.output
        assert f"#{flag_id} [high] audit/network" in out.output and "alice" in out.output
        out = runner.invoke(app, ["review", "show", str(flag_id)], env=env)
        assert out.exit_code == 0 and '"network"' in out.output
        denied = runner.invoke(app, ["review", "list", "--server", url, "--token", alice])
        assert denied.exit_code == 2 and "403" in denied.output
        out = runner.invoke(app, ["review", "disqualify", str(flag_id), "--note", "phoned home"], env=env)
        assert out.exit_code == 0 and "disqualified" in out.output, out.output
        out = runner.invoke(app, ["review", "dismiss", str(flag_id), "--note", "again"], env=env)
        assert out.exit_code == 2 and "409" in out.output
        assert "no open flags" in runner.invoke(app, ["review", "list"], env=env).output
        out = runner.invoke(app, ["review", "list", "--status", "all"], env=env)
        assert "resolved by boss: phoned home" in out.output
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = runner.invoke(app, ["verify", "--data-dir", str(data_dir), "--db", db_url, "--once", "--requeue"])
    assert out.exit_code == 0 and out.output == (
        f"requeued 0 result(s) left running\nnothing queued to verify in {data_dir}\n"
    )

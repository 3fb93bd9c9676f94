"""`aarlab demo --quick --json` end to end, as CI runs it: one JSON object on stdout with a verified
leaderboard, the red-team agent flagged, one transfer verdict per gated result and recorded usage."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

from aarlab.lab.demo import VERDICTS


def test_quick_demo_json() -> None:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "aarlab.cli", "demo", "--quick", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert data["profile"] == "quick" and data["task"] == "demo-cities"
    assert "/ui/login?token=aar_" in data["dashboard"]

    agents = {a["name"]: a for a in data["agents"]}
    assert "redteam" in agents and len(agents) == 4 and len(agents["redteam"]["results"]) == 2
    directions = [a["direction"] for a in data["agents"]]
    assert len(set(directions)) == len(directions)
    for a in data["agents"]:
        usage = a["server_usage"]
        assert a["status"] == "finished" and usage["status"] == "finished", a
        assert usage["submissions"] == a["submissions"] >= 1 and usage["results"] == len(a["results"])
        assert usage["hours"] > 0 and usage["direction"] == a["direction"]

    board = data["leaderboard"]
    assert len(board) >= 1 and all(r["dev_acc"] is not None for r in board)
    honest = [r for r in board if r["agent"] != "redteam"]
    assert honest

    flagged = {f["agent"] for f in data["flags"]}
    assert "redteam" in flagged and data["redteam"]["flagged"]
    kinds = set(data["redteam"]["flag_kinds"])
    assert "probing/single-item-flips" in kinds  # the label-probing attack is caught on the dev log
    assert any(k.startswith("ablation/") for k in kinds)  # the no-teacher method is caught by ablation

    (verdict,) = data["verdicts"]
    assert verdict["status"] == "done" and verdict["verdict"] in VERDICTS, verdict
    expected = next((r for r in honest if not r["open_flags"]), honest[0])  # the best unflagged honest row
    assert verdict["result_id"] == expected["result_id"] and verdict["settings_fingerprint"]
    gated = next(r for r in board if r["result_id"] == verdict["result_id"])
    assert gated["transfer"] == verdict["verdict"]  # the leaderboard shows the badge
    assert data["timings"]["total"] > 0


def test_demo_server_is_reachable_while_it_runs() -> None:
    """The in-process server listens on a real port (what the dashboard URL needs)."""
    from aarlab.config import get_settings
    from aarlab.lab.server import LocalServer

    data_dir = get_settings().home / "runs" / "reachability"
    server = LocalServer.start(data_dir)
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "ok"}
    finally:
        server.stop()


def _whole(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w.-])", text) is not None


def test_quick_demo_piped_keeps_every_agent_name_and_result_id_whole() -> None:
    """`aarlab demo --quick` with stdout piped (what `make demo | tee` or CI sees): a plain, wide layout in
    which every agent name and result id appears whole, ranked rows apart from those pending review, and
    progress with counts on stderr."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", COLUMNS="80")
    proc = subprocess.run(
        [sys.executable, "-m", "aarlab.cli", "demo", "--quick", "--hold", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "\x1b[" not in out and "…" not in out and not set("┏┃┡│└┌─━") & set(out)
    run_dir = re.search(r"^run folder: (.+)$", out, re.M)
    assert run_dir, out[-2000:]
    db = sqlite3.connect(Path(run_dir.group(1).strip()) / "server" / "server.db")
    agents = [n for (n,) in db.execute("SELECT name FROM agents WHERE role = 'agent'")]
    verified = {str(i) for (i,) in db.execute("SELECT id FROM results WHERE status = 'verified'")}
    critical = {
        str(i)
        for (i,) in db.execute(
            "SELECT DISTINCT result_id FROM flags WHERE status = 'open' AND severity = 'critical' "
            "AND result_id IS NOT NULL"
        )
    }
    db.close()
    assert len(agents) == 4 and verified
    for name in agents:
        assert _whole(out, name), name
    board = out[out.index("leaderboard — demo-cities") : out.index("review queue")]
    rows = [
        re.split(r"\s{2,}", line.strip())
        for line in board.splitlines()[2:]
        if re.match(r"^(\d+|pending review)\s{2,}\d+\s", line)  # rank, then result id
    ]
    assert {r[1] for r in rows} == verified  # the result column, whole, one row per verified result
    assert all(r[2] in agents for r in rows)
    ranked = [r for r in rows if r[0] != "pending review"]
    assert [r[0] for r in ranked] == [str(k) for k in range(1, len(ranked) + 1)]
    pending = {r[1] for r in rows if r[0] == "pending review"}
    agent_flagged = {r[1] for r in rows if "(critical)" in " ".join(r)}
    assert critical <= pending and pending == agent_flagged  # critical flags are never ranked
    assert rows.index(ranked[-1]) < min((rows.index(r) for r in rows if r[0] == "pending review"), default=99)
    assert re.search(r"transfer gate suites: 2/2 \(100%\)", proc.stderr), proc.stderr[-2000:]

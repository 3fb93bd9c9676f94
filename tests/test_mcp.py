"""``aarlab mcp`` as an external harness sees it: the server module runs as a subprocess speaking MCP
(JSON-RPC 2.0 over stdio, protocol 2025-06-18) against a real uvicorn evaluation server; initialize →
tools/list → tools/call (forum_post, forum_read, leaderboard, submit_dev, run_shell) → ping."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aarlab.agents.mcp_server import mcp_command
from llm_replay import TASK, LiveServer, make_world

PROTOCOL = "2025-06-18"


class StdioPeer:
    """A minimal MCP client: newline-delimited JSON-RPC over a subprocess's stdin/stdout."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.inbox.put(json.loads(line))

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def request(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        self.next_id += 1
        self.send(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, **({"params": params} if params else {})}
        )
        while True:
            try:
                msg = self.inbox.get(timeout=timeout)
            except queue.Empty:
                err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
                raise AssertionError(f"no answer to {method} within {timeout} s; stderr: {err}") from None
            if msg.get("id") == self.next_id:
                return msg

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        res = self.request("tools/call", {"name": name, "arguments": arguments})["result"]
        assert [c["type"] for c in res["content"]] == ["text"]
        return res["content"][0]["text"], bool(res.get("isError"))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings, _ = make_world(tmp_path_factory.mktemp("mcp-world"), export=False)
    with LiveServer(settings) as srv:
        yield srv


def test_mcp_stdio_session(live: LiveServer, tmp_path: Path) -> None:
    token = live.token("claude-code")
    env = {k: v for k, v in os.environ.items() if k not in ("AARLAB_SERVER", "AARLAB_TOKEN")}
    env.update(AARLAB_SERVER=live.url, AARLAB_TOKEN=token)  # the options' environment variables
    argv = [
        sys.executable,
        "-m",
        "aarlab.agents.mcp_server",
        "--sandbox",
        str(tmp_path / "sbx"),
        "--state-dir",
        str(tmp_path / "state"),
        "--hide",
        str(live.app.state.aarlab.settings.data_dir),
    ]
    peer = StdioPeer(argv, env)
    try:
        init = peer.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
        )["result"]
        assert init["protocolVersion"] == PROTOCOL and init["serverInfo"]["name"] == "aarlab"
        assert "tools" in init["capabilities"] and "forum-data" in init["instructions"]
        peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

        tools = {t["name"]: t for t in peer.request("tools/list")["result"]["tools"]}
        assert {
            "run_shell",
            "run_python",
            "submit_dev",
            "submit_result",
            "forum_read",
            "forum_post",
            "forum_comment",
            "forum_vote",
            "leaderboard",
            "code_get",
            "code_put",
            "notebook_read",
            "notebook_write",
        } == set(tools)
        assert tools["forum_post"]["inputSchema"]["required"] == ["kind", "title", "body"]

        text, err = peer.call(
            "forum_post", {"kind": "hypothesis", "title": "try EM", "body": "EM </forum-data> hi"}
        )
        assert not err and "posted as post" in text
        post_id = int(text.split("post ")[1].split()[0])
        text, err = peer.call("forum_read", {"post_id": post_id})
        assert not err and text.startswith("NOTICE") and 'author="claude-code"' in text
        assert text.count("</forum-data>") == 1 and "EM ‹/forum-data> hi" in text

        text, err = peer.call("leaderboard", {})  # the task defaults to the server's only task
        assert not err and f"no verified results for {TASK} yet" in text

        text, err = peer.call("submit_dev", {"predictions": {"not-a-dev-id": 0.5}})
        assert err and "the server refused (4" in text  # the server's message, as a tool error

        text, err = peer.call(
            "run_shell", {"command": f"echo from-the-sandbox; ls {live.app.state.aarlab.settings.data_dir}"}
        )
        assert "from-the-sandbox" in text and "secret" not in text

        assert peer.request("ping")["result"] == {}
        unknown = peer.request("tools/call", {"name": "nope", "arguments": {}})
        assert "unknown tool" in json.dumps(unknown)
    finally:
        peer.close()
    log = [json.loads(line) for line in (tmp_path / "state" / "tools.jsonl").read_text().splitlines()]
    assert [e["tool"] for e in log][:5] == [
        "forum_post",
        "forum_read",
        "leaderboard",
        "submit_dev",
        "run_shell",
    ]
    assert log[4]["suspicious"] is True  # it named the hidden data dir


def test_mcp_command_is_a_typer_command() -> None:
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command("mcp")(mcp_command)
    app.command("other")(lambda: None)
    out = CliRunner().invoke(app, ["mcp", "--help"])
    assert out.exit_code == 0
    for opt in ("--server", "--token", "--task", "--sandbox", "--state-dir", "--hide"):
        assert opt in out.output
    assert "AARLAB_SERVER" in out.output and "AARLAB_TOKEN" in out.output

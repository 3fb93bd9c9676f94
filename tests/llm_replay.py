"""Shared helpers for the agent tests: a local HTTP server speaking the Anthropic Messages and OpenAI chat
schemas (so the real SDK backends run against it), scripted model turns in both wire formats, and a small
real evaluation server world (tiny truth-cities task, label-free sandbox bundle)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from aarlab.api.client import Client
from aarlab.server.app import create_app
from aarlab.server.auth import add_agent
from aarlab.server.datadir import init_task
from aarlab.server.db import session_scope
from aarlab.server.sandbox import export_sandbox
from aarlab.server.settings import ServerSettings

TASK = "tiny-cities"
SMALL_PAIR = ("tfidf", "minilm-l3")


# --- scripted model turns -------------------------------------------------------------------------------


@dataclass
class Step:
    """One scripted model turn: text, tool calls [(name, arguments)], billed usage (uncached input,
    output), and optionally the provider's raw stop reason (``stop``; default ``tool_use`` /
    ``tool_calls`` with calls, else ``end_turn`` / ``stop``), prompt-cache reads and writes, and raw tool
    arguments per call (``raw_args``: the JSON text as a server cut off mid-call would send it)."""

    text: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: tuple[int, int] = (1000, 200)
    stop: str | None = None
    cache_read: int = 0
    cache_write: int = 0
    raw_args: list[str] | None = None
    extra_usage: dict[str, Any] = field(default_factory=dict)
    extra_message: dict[str, Any] = field(default_factory=dict)


def anthropic_turn(step: Step, model: str, n: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": step.text}] if step.text else []
    content += [
        {"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": args}
        for i, (name, args) in enumerate(step.calls)
    ]
    usage = {"input_tokens": step.usage[0], "output_tokens": step.usage[1]}
    if step.cache_read or step.cache_write:
        usage |= {"cache_read_input_tokens": step.cache_read, "cache_creation_input_tokens": step.cache_write}
    usage |= step.extra_usage
    return {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": step.stop or ("tool_use" if step.calls else "end_turn"),
        "stop_sequence": "###" if step.stop == "stop_sequence" else None,
        "usage": usage,
    }


def openai_turn(step: Step, model: str, n: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text or None} | step.extra_message
    raw = step.raw_args or [json.dumps(args) for _, args in step.calls]
    if step.calls and step.stop == "function_call":  # the deprecated single-function form
        message["function_call"] = {"name": step.calls[0][0], "arguments": raw[0]}
    elif step.calls:
        message["tool_calls"] = [
            {"id": f"call_{n}_{i}", "type": "function", "function": {"name": name, "arguments": raw[i]}}
            for i, (name, _) in enumerate(step.calls)
        ]
    prompt = step.usage[0] + step.cache_read
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": step.usage[1],
        "total_tokens": prompt + step.usage[1],
    }
    if step.cache_read:
        usage["prompt_tokens_details"] = {"cached_tokens": step.cache_read}
    usage |= step.extra_usage
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": step.stop or ("tool_calls" if step.calls else "stop"),
                "message": message,
            }
        ],
        "usage": usage,
    }


def anthropic_request_error(body: dict[str, Any]) -> str | None:
    """What the Messages API answers with HTTP 400 for a malformed conversation (None: well formed)."""
    msgs = body["messages"]
    for i, m in enumerate(msgs):
        content = m["content"]
        if isinstance(content, list) and any(
            b.get("type") == "text" and not b.get("text", "").strip() for b in content
        ):
            return f"messages.{i}: text content blocks must contain non-whitespace text"
        if not content and not (i == len(msgs) - 1 and m["role"] == "assistant"):
            return (
                f"messages.{i}: all messages must have non-empty content except for the optional final "
                "assistant message"
            )
        if i and msgs[i - 1]["role"] == m["role"]:
            return f"messages.{i}: roles must alternate between user and assistant"
        if m["role"] == "assistant" and isinstance(content, list):
            ids = {b["id"] for b in content if b.get("type") == "tool_use"}
            nxt = msgs[i + 1]["content"] if i + 1 < len(msgs) else []
            answered = {b.get("tool_use_id") for b in nxt if isinstance(b, dict)}
            if ids - answered:
                return (
                    f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(sorted(ids - answered))}"
                )
    return None


def openai_request_error(body: dict[str, Any]) -> str | None:
    """What a chat-completions server answers with HTTP 400 for a malformed conversation."""
    msgs = body["messages"]
    for i, m in enumerate(msgs):
        if m["role"] == "assistant":
            if not m.get("content") and not m.get("tool_calls"):
                return f"Invalid value for 'messages[{i}].content': expected a string, got null."
            want = {c["id"] for c in m.get("tool_calls") or []}
            got = set()
            for later in msgs[i + 1 :]:
                if later["role"] != "tool":
                    break
                got.add(later["tool_call_id"])
            if want - got:
                return (
                    "An assistant message with 'tool_calls' must be followed by tool messages responding "
                    f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                    f"{', '.join(sorted(want - got))}"
                )
    return None


#: A script entry: a fixed step, or a function of the request body (to react to tool results).
ScriptItem = Step | Callable[[dict[str, Any]], Step]


class ReplayAPI:
    """A local server for one provider ("anthropic" or "openai"): each request gets the next scripted step
    rendered in that provider's schema; requests are recorded. Running past the script is a 500 (so a
    loop that keeps calling fails loudly); a malformed conversation (an empty message, a tool call
    without its result) gets the HTTP 400 the real API sends (kept in ``rejected``)."""

    def __init__(self, provider: str, model: str, script: list[ScriptItem]) -> None:
        self.provider, self.model, self.script = provider, model, list(script)
        self.requests: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                api.requests.append({"path": self.path, "json": body})
                n = len(api.requests)
                check = anthropic_request_error if api.provider == "anthropic" else openai_request_error
                problem = check(body)
                if problem is not None:
                    api.rejected.append(problem)
                    status, payload = (
                        400,
                        {
                            "type": "error",
                            "error": {"type": "invalid_request_error", "message": problem},
                        },
                    )
                elif not api.script:
                    status, payload = 500, {"type": "error", "error": {"type": "api_error", "message": "end"}}
                else:
                    item = api.script.pop(0)
                    step = item if isinstance(item, Step) else item(body)
                    render = anthropic_turn if api.provider == "anthropic" else openai_turn
                    status, payload = 200, render(step, api.model, n)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ReplayAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def tool_results(body: dict[str, Any]) -> list[str]:
    """The tool-result texts of the last message of a request, in either schema."""
    msgs = body["messages"]
    if msgs and msgs[-1]["role"] == "user" and isinstance(msgs[-1]["content"], list):
        return [b["content"] for b in msgs[-1]["content"] if b.get("type") == "tool_result"]
    out = []
    for m in reversed(msgs):
        if m["role"] != "tool":
            break
        out.append(m["content"])
    return out[::-1]


def first_user_text(body: dict[str, Any]) -> str:
    for m in body["messages"]:
        if m["role"] == "user":
            c = m["content"]
            return c if isinstance(c, str) else "".join(b.get("text", "") for b in c)
    return ""


def system_text(body: dict[str, Any]) -> str:
    if "system" in body:
        return str(body["system"])
    return str(body["messages"][0]["content"])


# --- a real evaluation server world ---------------------------------------------------------------------


@dataclass
class World:
    app: TestClient
    data: Path
    db_dir: Path
    bundle: Path | None
    settings: ServerSettings

    def client(self, name: str, role: str = "agent") -> tuple[Client, str]:
        with session_scope(self.app.app.state.aarlab.sessions) as s:  # type: ignore[attr-defined]
            token = add_agent(s, name, role)
        return Client("http://testserver", token, http=TestClient(self.app.app)), token

    @property
    def forbidden(self) -> list[str]:
        return [str(self.data), str(self.db_dir)]


def make_world(
    root: Path, *, with_task: bool = True, export: bool = True
) -> tuple[ServerSettings, Path | None]:
    """Settings of a server over ``root`` (data dir, database in its own folder); with the tiny task
    when ``with_task``, and its exported label-free bundle when ``export`` too (it encodes the texts).
    The labelled reference copy is deleted after init, so the data dir is the only place with labels."""
    data, db_dir = root / "data", root / "db"
    data.mkdir(parents=True)
    db_dir.mkdir()
    bundle = None
    if with_task:
        import shutil

        from aarlab.testbed.loader import write_jsonl
        from aarlab.testbed.tasks.registry import split_by_entity
        from aarlab.testbed.tasks.truth_cities import build_truth_cities

        records = build_truth_cities(n_cities=170, n_capitals=20)
        ref = root / "ref" / TASK
        parts = split_by_entity(records, (0.25, 0.4, 0.35), 0)
        for name, part in zip(("train_label", "train_unlabel", "test"), parts, strict=True):
            write_jsonl(ref / f"{name}.jsonl", part)
        (data / "secret").write_text("cd" * 32)
        (data / "secret").chmod(0o600)
        init_task(data, str(ref), name=TASK)
        # the smallest encoders (TF-IDF teacher, 3-layer MiniLM student): the agent tests exercise the
        # plumbing, not the science, and stay fast on a cold feature cache
        meta_path = data / "tasks" / TASK / "task.json"
        meta = json.loads(meta_path.read_text())
        meta.update(weak=SMALL_PAIR[0], strong=SMALL_PAIR[1])
        meta_path.write_text(json.dumps(meta, indent=2))
        shutil.rmtree(root / "ref")
        if export:
            bundle = export_sandbox(data, TASK, root / "bundle")
    settings = ServerSettings(
        data_dir=data,
        db_url=f"sqlite:///{db_dir / 'server.db'}",
        storage_url=str(data / "code"),
        dev_budget=50,
    )
    return settings, bundle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The app under uvicorn on a free port in a thread (for clients in other processes)."""

    def __init__(self, settings: ServerSettings) -> None:
        import uvicorn

        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.aarlab.engine.dispose()

    def token(self, name: str, role: str = "agent") -> str:
        with session_scope(self.app.state.aarlab.sessions) as s:
            return str(add_agent(s, name, role))

"""The real `anthropic` / `openai` SDK clients against a local HTTP server that speaks each API's
schema and replays recorded tool-use turns (a tool call, then a final text turn)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from aarlab.agents.llm import (
    AssistantMessage,
    LLMBackend,
    LLMBackendError,
    PriceTable,
    ToolResult,
    ToolResultMessage,
    ToolSpec,
    Usage,
    UsageMeter,
    UserMessage,
    get_backend,
)
from aarlab.agents.llm.base import RetryPolicy, call_with_retries
from aarlab.testbed.errors import UnknownNameError

FAST_RETRY = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)
SUBMIT_DEV = ToolSpec(
    name="submit_dev",
    description="Submit a method to the dev split.",
    input_schema={
        "type": "object",
        "properties": {
            "method": {"type": "string"},
            "seeds": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["method"],
    },
)
ARGS = {"method": "confidence-reweighting", "seeds": [0, 1, 2]}


class FakeAPI:
    """A scripted HTTP server: each request pops the next (status, json body) and is recorded."""

    def __init__(self, script: list[tuple[int, dict[str, Any]]], repeat_last: bool = False) -> None:
        self.script = list(script)
        self.repeat_last = repeat_last
        self.requests: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                api.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": json.loads(body),
                    }
                )
                status, payload = (
                    api.script[0] if api.repeat_last and len(api.script) == 1 else api.script.pop(0)
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield


# --- recorded turns -----------------------------------------------------------------------------------------


def anthropic_tool_turn(model: str) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [
            {"type": "text", "text": "I'll submit the reweighting method."},
            {"type": "tool_use", "id": "toolu_01", "name": "submit_dev", "input": ARGS},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 1000, "output_tokens": 200},
    }


def anthropic_text_turn(model: str) -> dict[str, Any]:
    return {
        "id": "msg_02",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "Submitted; PGR 0.41."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1500, "output_tokens": 50, "cache_read_input_tokens": 100},
    }


def openai_tool_turn(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_01",
                            "type": "function",
                            "function": {"name": "submit_dev", "arguments": json.dumps(ARGS)},
                        },
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200},
    }


def openai_text_turn(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Submitted; PGR 0.41."},
            }
        ],
        "usage": {"prompt_tokens": 1500, "completion_tokens": 50, "total_tokens": 1550},
    }


ERROR_429 = (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
ERROR_500 = (500, {"type": "error", "error": {"type": "api_error", "message": "boom"}})


def run_two_turns(backend: LLMBackend) -> tuple[Any, Any]:
    """The researcher-loop pattern: ask, get a tool call, send the tool result, get the final text."""
    messages: list[Any] = [UserMessage("Try a method on the dev split.")]
    first = backend.complete("You are a researcher.", messages, [SUBMIT_DEV], max_tokens=512)
    messages.append(AssistantMessage.from_turn(first))
    messages.append(ToolResultMessage([ToolResult(first.tool_calls[0].id, '{"pgr": 0.41}')]))
    second = backend.complete("You are a researcher.", messages, [SUBMIT_DEV], max_tokens=512)
    return first, second


# --- Anthropic ----------------------------------------------------------------------------------------------


def test_anthropic_tool_use_round_trip(no_keys: None, monkeypatch: pytest.MonkeyPatch) -> None:
    model = "claude-sonnet-4-5-20250929"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with FakeAPI([(200, anthropic_tool_turn(model)), (200, anthropic_text_turn(model))]) as api:
        backend = get_backend("anthropic", model, base_url=api.url, retry=FAST_RETRY)
        first, second = run_two_turns(backend)

    assert first.stop_reason == "tool_use" and first.text.startswith("I'll submit")
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [("toolu_01", "submit_dev", ARGS)]
    assert (
        second.stop_reason == "end_turn" and second.text == "Submitted; PGR 0.41." and not second.tool_calls
    )

    req1, req2 = api.requests
    assert req1["path"] == "/v1/messages" and "sk-ant-test" in (
        req1["headers"].get("x-api-key"),
        req1["headers"].get("authorization", "").removeprefix("Bearer "),
    )
    body = req1["json"]
    assert body["model"] == model and body["max_tokens"] == 512 and body["system"] == "You are a researcher."
    assert body["tools"] == [
        {"name": "submit_dev", "description": SUBMIT_DEV.description, "input_schema": SUBMIT_DEV.input_schema}
    ]
    msgs = req2["json"]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "submit_dev",
        "input": ARGS,
    }
    assert msgs[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": '{"pgr": 0.41}', "is_error": False}
    ]

    # usage: 1000+200, then 1500 (+100 cache read) + 50, at $3 / $15 per million, cache reads at $0.30
    assert first.usage == Usage(1000, 200) and second.usage == Usage(1500, 50, cache_read_tokens=100)
    meter = backend.meter
    assert (meter.calls, meter.input_tokens, meter.output_tokens) == (2, 2600, 250)
    assert meter.cache_read_tokens == 100
    assert meter.dollars == pytest.approx((2500 * 3 + 100 * 0.3 + 250 * 15) / 1e6)
    assert not meter.has_unpriced


def test_anthropic_retries_429_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    model = "claude-haiku-4-5"
    with FakeAPI([ERROR_429, (200, anthropic_text_turn(model))]) as api:
        backend = get_backend("anthropic", model, base_url=api.url, api_key="k", retry=FAST_RETRY)
        turn = backend.complete("", [UserMessage("hi")], [], max_tokens=16)
    assert turn.text == "Submitted; PGR 0.41." and len(api.requests) == 2
    assert "tools" not in api.requests[0]["json"] and "system" not in api.requests[0]["json"]
    assert backend.meter.calls == 1  # the failed attempt is not billed


def test_anthropic_persistent_500_fails_clearly() -> None:
    with FakeAPI([ERROR_500], repeat_last=True) as api:
        backend = get_backend(
            "anthropic", "claude-sonnet-4-5", base_url=api.url, api_key="k", retry=FAST_RETRY
        )
        with pytest.raises(LLMBackendError, match=r"failed after 3 attempts: HTTP 500"):
            backend.complete("", [UserMessage("hi")], [], max_tokens=16)
    assert len(api.requests) == 3


def test_anthropic_missing_key_names_env_var(no_keys: None) -> None:
    with pytest.raises(LLMBackendError, match="ANTHROPIC_API_KEY"):
        get_backend("anthropic", "claude-sonnet-4-5")


def test_anthropic_non_retryable_error_is_not_retried() -> None:
    bad = (400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad tools"}})
    with FakeAPI([bad, bad]) as api:
        backend = get_backend(
            "anthropic", "claude-sonnet-4-5", base_url=api.url, api_key="k", retry=FAST_RETRY
        )
        with pytest.raises(LLMBackendError, match="HTTP 400"):
            backend.complete("", [UserMessage("hi")], [], max_tokens=16)
    assert len(api.requests) == 1


# --- OpenAI-compatible --------------------------------------------------------------------------------------


def test_openai_tool_calls_round_trip_with_dummy_key_for_local_server(no_keys: None) -> None:
    model = "gpt-4o-2024-08-06"
    with FakeAPI([(200, openai_tool_turn(model)), (200, openai_text_turn(model))]) as api:
        backend = get_backend("openai", model, base_url=api.url + "/v1", retry=FAST_RETRY)
        first, second = run_two_turns(backend)

    assert first.stop_reason == "tool_use" and first.text == ""
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [("call_01", "submit_dev", ARGS)]
    assert second.stop_reason == "end_turn" and second.text == "Submitted; PGR 0.41."

    req1, req2 = api.requests
    assert req1["path"] == "/v1/chat/completions"
    assert req1["headers"]["authorization"] == "Bearer sk-no-key-required"
    body = req1["json"]
    assert body["model"] == model and body["max_tokens"] == 512  # self-hosted servers get `max_tokens`
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "submit_dev",
                "description": SUBMIT_DEV.description,
                "parameters": SUBMIT_DEV.input_schema,
            },
        }
    ]
    assert body["messages"][0] == {"role": "system", "content": "You are a researcher."}
    msgs = req2["json"]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool"]
    call = msgs[2]["tool_calls"][0]
    assert call["id"] == "call_01" and json.loads(call["function"]["arguments"]) == ARGS
    assert msgs[3] == {"role": "tool", "tool_call_id": "call_01", "content": '{"pgr": 0.41}'}

    meter = backend.meter
    assert (meter.calls, meter.input_tokens, meter.output_tokens) == (2, 2500, 250)
    assert meter.dollars == pytest.approx((2500 * 2.5 + 250 * 10) / 1e6)


def test_openai_retries_429_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeAPI([ERROR_429, (200, openai_text_turn("llama-3"))]) as api:
        backend = get_backend("openai", "llama-3", base_url=api.url + "/v1", retry=FAST_RETRY)
        turn = backend.complete("", [UserMessage("hi")], [], max_tokens=16)
    assert turn.text == "Submitted; PGR 0.41." and len(api.requests) == 2
    assert api.requests[1]["headers"]["authorization"] == "Bearer sk-test"
    # an unpriced (local) model costs $0 and is flagged
    assert backend.meter.dollars == 0.0 and backend.meter.unpriced_models == {"llama-3"}


def test_openai_persistent_500_fails_clearly() -> None:
    with FakeAPI([ERROR_500], repeat_last=True) as api:
        backend = get_backend("openai", "gpt-4o", base_url=api.url + "/v1", api_key="k", retry=FAST_RETRY)
        with pytest.raises(LLMBackendError, match=r"failed after 3 attempts: HTTP 500"):
            backend.complete("", [UserMessage("hi")], [], max_tokens=16)
    assert len(api.requests) == 3


@pytest.mark.parametrize("base_url", [None, "https://api.openai.com/v1"])
def test_openai_missing_key_names_env_var(no_keys: None, base_url: str | None) -> None:
    with pytest.raises(LLMBackendError, match="OPENAI_API_KEY"):
        get_backend("openai", "gpt-4o", base_url=base_url)


def test_openai_invalid_tool_json_is_kept_not_fatal() -> None:
    turn = openai_tool_turn("m")
    turn["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{not json"
    turn["choices"][0]["finish_reason"] = "stop"  # some servers say "stop" with tool calls
    with FakeAPI([(200, turn)]) as api:
        backend = get_backend("openai", "m", base_url=api.url + "/v1", retry=FAST_RETRY)
        out = backend.complete("", [UserMessage("hi")], [SUBMIT_DEV], max_tokens=16)
    assert out.tool_calls[0].arguments == {"_unparsed": "{not json"} and out.stop_reason == "tool_use"


# --- prices, meter, registry --------------------------------------------------------------------------------


def test_price_table_prefix_match_and_unknown_model() -> None:
    prices = PriceTable()
    assert prices.lookup("claude-sonnet-4-20250514") == (3.0, 15.0, 0.3, 3.75, 6.0)
    assert prices.lookup("gpt-4o-mini-2024-07-18") == (0.15, 0.6, 0.075, None, None)  # longest prefix
    assert prices.cost("gpt-4o", Usage(1_000_000, 1_000_000)) == (12.5, True)
    assert prices.cost("my-local-model", Usage(10, 10)) == (0.0, False)
    meter = UsageMeter(prices=PriceTable({"m": (1.0, 2.0)}))
    assert meter.record("m", Usage(1_000_000, 500_000)) == pytest.approx(2.0)
    assert meter.summary() == {
        "calls": 1,
        "input_tokens": 1_000_000,
        "output_tokens": 500_000,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "dollars": 2.0,
        "unpriced_models": [],
    }


def test_registry_unknown_backend_lists_known() -> None:
    with pytest.raises(UnknownNameError, match="anthropic, openai"):
        get_backend("gemini", "x")


def test_backoff_is_exponential_and_honours_retry_after() -> None:
    class Transient(Exception):
        def __init__(self, retry_after: str | None = None) -> None:
            super().__init__("transient")
            self.response = SimpleNamespace(headers={"retry-after": retry_after} if retry_after else {})

    def flaky(failures: list[Exception]) -> Callable[[], str]:
        def fn() -> str:
            if failures:
                raise failures.pop(0)
            return "ok"

        return fn

    policy = RetryPolicy(max_retries=3, base_delay=0.1, max_delay=1.0)
    sleeps: list[float] = []
    fn = flaky([Transient(), Transient(), Transient()])
    assert (
        call_with_retries(fn, policy=policy, classify=lambda e: "x", describe="d", sleep=sleeps.append)
        == "ok"
    )
    for k, s in enumerate(sleeps):
        assert 0.05 * 2**k <= s <= 0.1 * 2**k
    sleeps.clear()
    fn = flaky([Transient("0.7"), Transient("100")])
    call_with_retries(fn, policy=policy, classify=lambda e: "x", describe="d", sleep=sleeps.append)
    assert sleeps == [0.7, 1.0]  # the server's wait when longer, capped at max_delay
    with pytest.raises(ValueError):  # non-retryable errors propagate untouched, without sleeping
        call_with_retries(flaky([ValueError()]), policy=policy, classify=lambda e: None, describe="d")

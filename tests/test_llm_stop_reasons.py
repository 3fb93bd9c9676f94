"""The researcher loop against what real APIs return, with both SDKs' real clients and the replay server:
every documented stop reason, a tool call cut off at the output limit, empty assistant turns, the output
floor near the end of a token budget, and prompt-cache tokens priced at their own rates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aarlab.agents.directions import get_direction
from aarlab.agents.llm import AssistantMessage, PriceTable, ToolCall, UserMessage, get_backend
from aarlab.agents.llm.anthropic_backend import ANTHROPIC_STOP, to_anthropic_messages
from aarlab.agents.llm.base import RetryPolicy, Usage
from aarlab.agents.llm.openai_backend import OPENAI_STOP, to_openai_messages
from aarlab.agents.loop import MIN_OUTPUT_TOKENS, LLMBudget, LLMResearcherReport, run_llm_researcher
from aarlab.server.app import create_app
from llm_replay import ReplayAPI, Step, World, make_world

MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o"}
FAST_RETRY = RetryPolicy(max_retries=0, base_delay=0.01, max_delay=0.02)
NOTEBOOK = ("Session notes: compose with EM relabelling, rounds=1, soft targets, agreement 0.91. " * 31)[
    :2509
]
FRAGMENT = NOTEBOOK[:37]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("stop-world")
    settings, _ = make_world(root, with_task=False)
    app = create_app(settings)
    with TestClient(app) as tc:
        yield World(tc, settings.data_dir, root / "db", None, settings)
    app.state.aarlab.engine.dispose()


def session(
    world: World, tmp: Path, provider: str, script: list[Any], budget: LLMBudget | None = None
) -> tuple[LLMResearcherReport, ReplayAPI]:
    client, _ = world.client(f"s-{provider}-{tmp.name}"[:60])
    with ReplayAPI(provider, MODELS[provider], script) as api:
        backend = get_backend(provider, MODELS[provider], base_url=api.url, api_key="k", retry=FAST_RETRY)
        report = run_llm_researcher(
            client,
            backend,
            agent="a",
            task="no-such-task",
            direction=get_direction("distillation"),
            sandbox=tmp / "sbx",
            state_dir=tmp / "state",
            budget=budget or LLMBudget(max_seconds=120),
        )
    return report, api


def executed(tmp: Path) -> list[str]:
    log = tmp / "state" / "tools.jsonl"
    return [json.loads(line)["tool"] for line in log.read_text().splitlines()] if log.exists() else []


def last_user_text(body: dict[str, Any]) -> str:
    m = body["messages"][-1]
    c = m["content"]
    return c if isinstance(c, str) else "".join(b.get("text", "") for b in c)


# --- a tool call cut off at the output limit ---


@pytest.mark.parametrize(("provider", "raw"), [("anthropic", "max_tokens"), ("openai", "length")])
def test_truncated_tool_call_is_never_executed(world: World, tmp_path: Path, provider: str, raw: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "notebook.md").write_text(NOTEBOOK)
    # Anthropic returns the partial input it parsed; OpenAI the raw JSON text cut mid-string
    cut = Step(
        calls=[("notebook_write", {"content": FRAGMENT})],
        stop=raw,
        raw_args=[json.dumps({"content": NOTEBOOK})[:50]],
    )
    report, api = session(world, tmp_path, provider, [cut, Step("Understood; done.")])
    assert (state / "notebook.md").read_text() == NOTEBOOK  # 2,509 characters, not a 37-character fragment
    assert "notebook_write" not in executed(tmp_path)
    told = last_user_text(api.requests[1]["json"])
    assert "cut off by the output limit" in told and "notebook_write" in told and "NOT executed" in told
    assert "notebook saved" not in json.dumps(api.requests[1]["json"])
    assert api.rejected == [] and report.stop_reason == "done" and report.tool_calls == 0


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_cut_off_turns_in_a_row_stop_the_session(world: World, tmp_path: Path, provider: str) -> None:
    raw = "max_tokens" if provider == "anthropic" else "length"
    report, api = session(world, tmp_path, provider, [Step("a long essay", stop=raw) for _ in range(5)])
    assert len(api.requests) == 3 and api.rejected == []
    assert (
        report.stop_reason.startswith("model: cut off at the output limit")
        and "3 turns" in report.stop_reason
    )


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_output_request_never_below_what_a_tool_call_needs(
    world: World, tmp_path: Path, provider: str
) -> None:
    # 1,200 tokens per turn: after one turn 100 are left; the old loop asked for max_tokens=100
    script = [Step(f"step {i}", [("run_shell", {"command": "echo hi"})]) for i in range(3)]
    report, api = session(world, tmp_path, provider, script, LLMBudget(max_tokens=1300))
    sent = [r["json"].get("max_tokens", r["json"].get("max_completion_tokens")) for r in api.requests]
    assert sent == [1300] and min(sent) >= MIN_OUTPUT_TOKENS
    assert report.stop_reason == "budget:tokens" and report.turns == 1 and report.tool_calls == 1


# --- empty assistant turns ---


@pytest.mark.parametrize(
    ("provider", "first"),
    [
        ("anthropic", Step("", stop="max_tokens")),  # e.g. all output went to thinking: content []
        ("anthropic", Step("   ", stop="pause_turn")),
        ("openai", Step("", stop="length")),  # content null, no tool calls
    ],
)
def test_empty_assistant_turn_is_never_sent_back(
    world: World, tmp_path: Path, provider: str, first: Step
) -> None:
    report, api = session(world, tmp_path, provider, [first, Step("Done.")])
    assert api.rejected == [], api.rejected  # the replay server answers an empty message with HTTP 400
    assert report.stop_reason == "done" and len(api.requests) == 2
    for m in api.requests[1]["json"]["messages"]:
        assert m["role"] != "assistant" or m.get("content") or m.get("tool_calls")


def test_backends_leave_out_empty_assistant_messages() -> None:
    msgs: list[Any] = [
        UserMessage("go"),
        AssistantMessage(""),
        UserMessage("continue"),
        AssistantMessage(" "),
    ]
    anth = to_anthropic_messages(msgs)
    assert anth == [
        {"role": "user", "content": [{"type": "text", "text": "go"}, {"type": "text", "text": "continue"}]}
    ]
    oai = to_openai_messages("sys", msgs)
    assert [m["role"] for m in oai] == ["system", "user", "user"]
    call = AssistantMessage("", [ToolCall("c1", "run_shell", {"command": "ls"})])
    assert to_openai_messages("", [call])[0]["content"] is None  # null content is fine with tool calls
    assert to_anthropic_messages([call])[0]["content"][0]["type"] == "tool_use"  # no empty text block


# --- every documented stop reason ---

SHELL = [("run_shell", {"command": "echo hi"})]


def test_every_documented_stop_reason_is_mapped() -> None:
    assert set(ANTHROPIC_STOP) == {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
    assert set(OPENAI_STOP) == {"stop", "length", "tool_calls", "content_filter", "function_call"}
    assert "unknown" not in set(ANTHROPIC_STOP.values()) | set(OPENAI_STOP.values())


#: (provider, first turn, stop reason of the session, requests made, tools executed, second-request check)
CASES: list[tuple[str, Step, str, int, list[str], str | None]] = [
    ("anthropic", Step("All done."), "done", 1, [], None),
    ("anthropic", Step("Finished ###", stop="stop_sequence"), "done: stop_sequence", 1, [], None),
    ("anthropic", Step("Running it.", SHELL), "done", 2, ["run_shell"], "hi"),
    ("anthropic", Step("Half a sent", stop="max_tokens"), "done", 2, [], "cut off by the output limit"),
    ("anthropic", Step("Searching...", stop="pause_turn"), "done", 2, [], "Searching..."),
    ("anthropic", Step("", SHELL, stop="refusal"), "model: refusal", 1, [], None),
    (
        "anthropic",
        Step("", SHELL, stop="model_context_window_exceeded"),
        "done",
        2,
        [],
        "context window",
    ),
    (
        "anthropic",
        Step("?", SHELL, stop="brand_new_reason"),
        "model: unknown stop reason 'brand_new_reason'",
        1,
        [],
        None,
    ),
    ("openai", Step("All done."), "done", 1, [], None),
    ("openai", Step("Running it.", SHELL), "done", 2, ["run_shell"], "hi"),
    ("openai", Step("Half a sent", stop="length"), "done", 2, [], "cut off by the output limit"),
    ("openai", Step("", stop="content_filter"), "model: content_filter", 1, [], None),
    ("openai", Step("", SHELL, stop="function_call"), "done", 2, ["run_shell"], "hi"),
    ("openai", Step("?", SHELL, stop="eos"), "model: unknown stop reason 'eos'", 1, [], None),
    # a refusal in the `refusal` field comes with finish_reason "stop" and no content
    ("openai", Step("", extra_message={"refusal": "I can't help with that."}), "model: refusal", 1, [], None),
]


@pytest.mark.parametrize(
    ("provider", "first", "stop", "n_requests", "tools", "then"),
    CASES,
    ids=[f"{c[0]}-{c[1].stop or ('tools' if c[1].calls else 'end')}" for c in CASES],
)
def test_each_stop_reason_is_handled_explicitly(
    world: World,
    tmp_path: Path,
    provider: str,
    first: Step,
    stop: str,
    n_requests: int,
    tools: list[str],
    then: str | None,
) -> None:
    report, api = session(world, tmp_path, provider, [first, Step("Done.")])
    assert report.stop_reason.startswith(stop), report.stop_reason
    assert len(api.requests) == n_requests and executed(tmp_path) == tools and api.rejected == []
    if then is not None:
        assert then in json.dumps(api.requests[1]["json"]["messages"][-1])


# --- prompt-cache pricing ---


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_prompt_cache_tokens_are_priced_at_their_own_rates(
    world: World, tmp_path: Path, provider: str
) -> None:
    write = 2000 if provider == "anthropic" else 0  # OpenAI reports (and bills) no cache writes
    report, _ = session(
        world, tmp_path, provider, [Step("Done.", usage=(1000, 200), cache_read=10_000, cache_write=write)]
    )
    if provider == "anthropic":  # $3 input, $0.30 cache read, $3.75 cache write, $15 output per M
        want = (1000 * 3 + 10_000 * 0.3 + 2000 * 3.75 + 200 * 15) / 1e6
    else:  # $2.50 input, $1.25 cached input, $10 output per M
        want = (1000 * 2.5 + 10_000 * 1.25 + 200 * 10) / 1e6
    assert report.dollars == pytest.approx(want)
    assert report.tokens_in == 1000 + 10_000 + write and report.tokens_out == 200


def test_price_table_cache_rates_and_plain_tuples() -> None:
    prices = PriceTable()
    sonnet = prices.lookup("claude-sonnet-4-5-20250929")
    assert sonnet is not None and sonnet[:2] == (3.0, 15.0)
    assert prices.cost("claude-sonnet-4-5", Usage(0, 0, cache_read_tokens=1_000_000))[0] == pytest.approx(0.3)
    assert prices.cost("claude-sonnet-4-5", Usage(0, 0, cache_write_tokens=1_000_000))[0] == pytest.approx(
        3.75
    )
    assert prices.cost("gpt-4.1-mini", Usage(0, 0, cache_read_tokens=1_000_000))[0] == pytest.approx(0.1)
    own = PriceTable({"m": (1.0, 2.0)})  # no cache rates given: cache tokens at the input rate
    assert own.cost("m", Usage(0, 0, 1_000_000, 1_000_000))[0] == pytest.approx(2.0)


def test_anthropic_one_hour_cache_writes_cost_twice_the_input_rate(world: World, tmp_path: Path) -> None:
    step = Step(
        "Done.",
        usage=(1000, 200),
        cache_write=3000,
        extra_usage={
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}
        },
    )
    report, _ = session(world, tmp_path, "anthropic", [step])
    assert report.dollars == pytest.approx((1000 * 3 + 1000 * 3.75 + 2000 * 6 + 200 * 15) / 1e6)
    assert report.tokens_in == 4000

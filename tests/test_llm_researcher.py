"""``run_llm_researcher`` with the real Anthropic and OpenAI SDK backends against a local replay server,
on a real evaluation server with the tiny task: a scripted session reads the forum, runs a method on the
label-free bundle in the sandbox, submits dev predictions and the method folder as a result, writes its
notebook; a second session sees the notebook; budgets stop the loop cleanly."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aarlab.agents.directions import get_direction
from aarlab.agents.llm import PriceTable, get_backend
from aarlab.agents.llm.base import (
    AssistantMessage,
    LLMBackend,
    RetryPolicy,
    ToolCall,
    ToolResult,
    ToolResultMessage,
    UserMessage,
)
from aarlab.agents.loop import LLMBudget, LLMResearcherReport, bound_transcript, run_llm_researcher
from aarlab.agents.search import COMPOSE_METHOD_PY
from aarlab.server.app import create_app
from llm_replay import TASK, ReplayAPI, Step, World, first_user_text, make_world, system_text, tool_results

MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o"}
FAST_RETRY = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.02)
CONFIG = {"targets": "soft", "relabel": "em", "rounds": 1}
RUN_METHOD = f"""
import json
from pathlib import Path
from aarlab.testbed.bundle import load_bundle, run_method_on_bundle
preds, notes = run_method_on_bundle(load_bundle(Path("bundle")), "compose", {CONFIG!r}, seed=0)
Path("preds.json").write_text(json.dumps(preds))
Path("m").mkdir(exist_ok=True)
Path("m/method.py").write_text({COMPOSE_METHOD_PY!r})
print("predictions:", len(preds), "agreement:", round(notes["agreement"], 3))
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("llm-world")
    settings, bundle = make_world(root)
    app = create_app(settings)
    with TestClient(app) as tc:
        yield World(tc, settings.data_dir, root / "db", bundle, settings)
    app.state.aarlab.engine.dispose()


def sandbox_for(world: World, root: Path) -> Path:
    assert world.bundle is not None
    sbx = root / "sandbox"
    shutil.copytree(world.bundle, sbx / "bundle")
    return sbx


def backend_for(provider: str, api: ReplayAPI) -> LLMBackend:
    return get_backend(provider, MODELS[provider], base_url=api.url, api_key="k", retry=FAST_RETRY)


def session_script() -> list[Any]:
    def submit_result(body: dict[str, Any]) -> Step:
        (answer,) = tool_results(body)  # react to what the server reported for the dev submission
        score = float(re.search(r"reported score ([0-9.]+)", answer).group(1))  # type: ignore[union-attr]
        return Step(
            calls=[("submit_result", {"folder": "m", "config": CONFIG, "claimed": {"dev_acc": score}})]
        )

    return [
        Step(
            "Reading the forum and my notes first.", [("forum_read", {"q": "compose"}), ("notebook_read", {})]
        ),
        Step("Running compose with EM relabelling on the bundle.", [("run_python", {"code": RUN_METHOD})]),
        Step(calls=[("submit_dev", {"path": "preds.json"})]),
        submit_result,
        Step(
            calls=[
                (
                    "forum_post",
                    {"kind": "insight", "title": "EM relabel", "body": f"compose {CONFIG} submitted"},
                ),
                ("notebook_write", {"content": "session 1: compose+EM submitted as a result; next: try mlp"}),
            ]
        ),
        Step("Done for this session."),
    ]


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_scripted_session_end_to_end(world: World, tmp_path: Path, provider: str) -> None:
    name = f"llm-{provider}"
    client, _ = world.client(name)
    sbx, state = sandbox_for(world, tmp_path), tmp_path / "state"
    direction = get_direction("noisy-channel-em")
    progress: list[LLMResearcherReport] = []
    with ReplayAPI(provider, MODELS[provider], session_script()) as api:
        report = run_llm_researcher(
            client,
            backend_for(provider, api),
            agent=name,
            task=TASK,
            direction=direction,
            sandbox=sbx,
            state_dir=state,
            budget=LLMBudget(max_seconds=300),
            forbidden=world.forbidden,
            on_progress=progress.append,
        )
    assert report.stop_reason == "done", report
    assert (report.turns, report.tool_calls, report.submissions) == (6, 7, 1)
    assert (report.tokens_in, report.tokens_out) == (6000, 1200)
    price = PriceTable().lookup(MODELS[provider])
    assert price is not None and report.dollars == pytest.approx((6000 * price[0] + 1200 * price[1]) / 1e6)
    assert [p.turns for p in progress] == [1, 2, 3, 4, 5, 6] and progress[-1].results == report.results

    # what the server holds: one dev submission, one queued result with the config and claim, one post
    (result,) = client.my_results()
    assert report.results == [result.id] and result.status == "queued"
    assert len(client.my_dev_submissions(TASK)) == 1
    assert [p.title for p in client.posts(author=name).items] == ["EM relabel"]

    # what the model saw: the system prompt, the tool outputs marked by origin
    reqs = [r["json"] for r in api.requests]
    assert len(reqs) == 6
    system = system_text(reqs[0])
    assert direction.name in system and TASK in system and "<forum-data>" in system and "method.py" in system
    assert "(empty: this is your first session)" in first_user_text(reqs[0])
    forum, notebook = tool_results(reqs[1])
    assert "NOTICE" in forum and notebook == "(your notebook is empty)"
    (ran,) = tool_results(reqs[2])
    assert ran.startswith('<tool-output status="exit 0"') and "predictions: " in ran, ran
    n_dev = json.loads((world.bundle / "manifest.json").read_text())["n_dev"]  # type: ignore[operator]
    assert f"predictions: {n_dev} " in ran
    (dev,) = tool_results(reqs[3])
    assert dev.startswith("<server-response>") and "dev submission accepted" in dev
    (res,) = tool_results(reqs[4])
    assert f"result {result.id} for task {TASK} is queued" in res
    assert (state / "notebook.md").read_text().startswith("session 1:")
    entries = [json.loads(line) for line in (state / "tools.jsonl").read_text().splitlines()]
    assert not any(e["suspicious"] for e in entries)  # honest work is not flagged
    logged = [e["tool"] for e in entries]
    assert logged == [
        "forum_read",
        "notebook_read",
        "run_python",
        "submit_dev",
        "submit_result",
        "forum_post",
        "notebook_write",
    ]

    # a second session of the same agent starts from its notebook
    with ReplayAPI(provider, MODELS[provider], [Step("Nothing new to add.")]) as api2:
        again = run_llm_researcher(
            client,
            backend_for(provider, api2),
            agent=name,
            task=TASK,
            direction=direction,
            sandbox=sbx,
            state_dir=state,
            budget=LLMBudget(),
        )
    assert again.stop_reason == "done" and again.turns == 1
    opening = first_user_text(api2.requests[0]["json"])
    assert "<notebook>\nsession 1: compose+EM submitted as a result; next: try mlp\n</notebook>" in opening


def busy_script(n: int = 6) -> list[Any]:
    return [Step(f"step {i}", [("run_shell", {"command": f"echo step-{i}"})]) for i in range(n)]


@pytest.mark.parametrize(
    ("budget", "reason", "calls", "tools"),
    [
        # 1200 tokens per turn: after 2 turns 600 are left, too few for a tool call (MIN_OUTPUT_TOKENS)
        (LLMBudget(max_tokens=3000), "budget:tokens", 2, 2),
        (
            LLMBudget(max_dollars=0.01),
            "budget:dollars",
            2,
            1,
        ),  # the 2nd turn crosses the budget  # $0.006 per turn at $3 / $15 per M
        (LLMBudget(max_turns=3), "budget:turns", 3, 3),  # the 3rd turn's tools still run
        (LLMBudget(max_seconds=0), "budget:seconds", 0, 0),
    ],
)
def test_budgets_stop_cleanly_without_further_calls(
    world: World, tmp_path: Path, budget: LLMBudget, reason: str, calls: int, tools: int
) -> None:
    client, _ = world.client(f"b-{reason.split(':')[1]}")
    with ReplayAPI("anthropic", MODELS["anthropic"], busy_script()) as api:
        report = run_llm_researcher(
            client,
            backend_for("anthropic", api),
            agent="b",
            task=TASK,
            direction=get_direction("distillation"),
            sandbox=tmp_path / "sbx",
            state_dir=tmp_path / "state",
            budget=budget,
        )
    assert report.stop_reason == reason
    assert len(api.requests) == calls == report.turns and report.tool_calls == tools
    executed = tmp_path / "state" / "tools.jsonl"
    assert len(executed.read_text().splitlines()) == tools if tools else not executed.exists()


def test_submission_budget_refuses_then_stops(world: World, tmp_path: Path) -> None:
    client, _ = world.client("subs")
    preds = {it.id: 0.5 for it in client.dev_items(TASK).items}
    script = [Step(calls=[("submit_dev", {"predictions": preds})]) for _ in range(4)]
    with ReplayAPI("openai", MODELS["openai"], script) as api:
        report = run_llm_researcher(
            client,
            backend_for("openai", api),
            agent="subs",
            task=TASK,
            direction=get_direction("distillation"),
            sandbox=tmp_path / "sbx",
            state_dir=tmp_path / "state",
            budget=LLMBudget(max_submissions=1),
        )
    assert report.stop_reason == "budget:submissions" and report.submissions == 1 and report.turns == 3
    assert len(client.my_dev_submissions(TASK)) == 1  # the refusals never reached the server
    (refusal,) = tool_results(api.requests[2]["json"])
    assert "submission budget for this session is spent" in refusal


def test_model_failure_ends_with_an_error_reason(world: World, tmp_path: Path) -> None:
    client, _ = world.client("err")
    with ReplayAPI("anthropic", MODELS["anthropic"], busy_script(1)) as api:  # the 2nd call gets a 500
        report = run_llm_researcher(
            client,
            backend_for("anthropic", api),
            agent="err",
            task=TASK,
            direction=get_direction("distillation"),
            sandbox=tmp_path / "sbx",
            state_dir=tmp_path / "state",
            budget=LLMBudget(),
        )
    assert report.stop_reason.startswith("error: LLMBackendError") and "HTTP 500" in report.stop_reason
    assert report.turns == 1 and report.tool_calls == 1


def test_transcript_stays_bounded_and_paired() -> None:
    msgs: list[Any] = [UserMessage("start")]
    for i in range(40):
        msgs.append(AssistantMessage(f"t{i}", [ToolCall(f"c{i}", "run_shell", {"command": "x"})]))
        msgs.append(ToolResultMessage([ToolResult(f"c{i}", "y" * 5000)]))
    out = bound_transcript(msgs, limit=30_000)
    assert sum(len(r.content) for m in out if isinstance(m, ToolResultMessage) for r in m.results) <= 30_000
    assert out[0] == msgs[0] and out[-6:] == msgs[-6:]  # the opening and the recent exchanges are whole
    for a, b in zip(out[1::2], out[2::2], strict=True):  # every call still has its result, roles alternate
        assert isinstance(a, AssistantMessage) and isinstance(b, ToolResultMessage)
        assert a.tool_calls[0].id == b.results[0].tool_call_id
    assert bound_transcript(msgs[:3], limit=30_000) == msgs[:3]
    tight = bound_transcript(msgs, limit=16_000)  # trimming is not enough: the oldest exchanges go
    assert len(tight) < len(msgs) and tight[0] == msgs[0] and tight[-6:] == msgs[-6:]
    assert isinstance(tight[1], AssistantMessage) and isinstance(tight[2], ToolResultMessage)
    assert tight[1].tool_calls[0].id == tight[2].results[0].tool_call_id

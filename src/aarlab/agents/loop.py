"""The LLM researcher: a tool-using model works on one task along one direction, within a budget.

One loop per agent: build the system prompt (role, task, direction, method contract, tools, rules), put
the agent's notebook in the first message, then alternate model turns and tool calls until the model ends
its turn without calling a tool or a budget runs out. Budgets are checked before every model call and
after it (tokens and dollars are counted from each ``Turn.usage`` with the backend's model id, so a meter
shared between agents does not blur them). The transcript is kept bounded by shortening old tool outputs
and, if that is not enough, dropping the oldest exchanges. ``on_progress`` sees a report after each turn
(the orchestrator records usage on the server from it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from aarlab.agents.directions import Direction
from aarlab.agents.llm.base import LLMBackend, Message, ToolResult, ToolResultMessage, UsageMeter, UserMessage
from aarlab.agents.prompt import find_bundle, system_prompt
from aarlab.agents.tools import Toolbox, neutralise
from aarlab.agents.transcript import MAX_TRANSCRIPT_CHARS, bound_transcript
from aarlab.agents.turns import handle_turn
from aarlab.api.client import Client

__all__ = [
    "MAX_OUTPUT_TOKENS",
    "MIN_OUTPUT_TOKENS",
    "LLMBudget",
    "LLMResearcherReport",
    "bound_transcript",
    "find_bundle",
    "run_llm_researcher",
    "system_prompt",
]

#: Output tokens asked for per model call.
MAX_OUTPUT_TOKENS = 4096
#: The fewest output tokens a call may ask for: room for a tool call with real arguments (a notebook, a
#: method file). With less left in the token budget, the session stops instead of asking for a turn
#: that would be cut off mid-call.
MIN_OUTPUT_TOKENS = 1024
#: Calls to submit_dev after the session's budget was reported spent before the loop stops.
MAX_REFUSED_SUBMISSIONS = 2


@dataclass(frozen=True)
class LLMBudget:
    """Stop when any of these is used up (None: no limit)."""

    max_seconds: float = 3600.0
    max_tokens: int | None = None  # input + output tokens
    max_dollars: float | None = None
    max_submissions: int | None = None  # dev submissions
    max_turns: int = 200


@dataclass
class LLMResearcherReport:
    """What one session did and spent, and why it stopped.

    ``stop_reason`` is ``done`` (the model ended its turn), ``done: stop_sequence``, ``budget:<what>``
    (seconds, tokens, dollars, turns, submissions), ``model: <why>`` (the API ended the session: a refusal,
    a content filter, the context window, repeated cut-offs or paused turns, a stop reason no provider
    documents), or ``error: <exception>`` (a failed model call).
    """

    agent: str
    direction: str
    turns: int
    tool_calls: int
    submissions: int
    results: list[int]
    tokens_in: int
    tokens_out: int
    dollars: float
    seconds: float
    stop_reason: str


def run_llm_researcher(
    client: Client,
    backend: LLMBackend,
    *,
    agent: str,
    task: str,
    direction: Direction,
    sandbox: Path,
    state_dir: Path,
    budget: LLMBudget,
    forbidden: Sequence[str] = (),
    on_progress: Callable[[LLMResearcherReport], None] | None = None,
) -> LLMResearcherReport:
    """Run one session of an LLM researcher; returns when it is done or a budget runs out (never raises
    for model or tool failures: they end the session with ``stop_reason = "error: ..."``).

    ``forbidden`` are paths the agent's commands must never see (the server's data dir, the database's
    folder, ...); they are hidden from the sandboxed shell. ``state_dir`` (outside the sandbox) keeps the
    notebook and the tool log across sessions.
    """
    t0 = time.monotonic()
    toolbox = Toolbox(
        client,
        sandbox=sandbox,
        state_dir=state_dir,
        task=task,
        hidden=forbidden,
        max_submissions=budget.max_submissions,
    )
    meter = UsageMeter(prices=backend.meter.prices)
    report = LLMResearcherReport(agent, direction.name, 0, 0, 0, [], 0, 0, 0.0, 0.0, "")
    system = system_prompt(agent, task, direction, Path(sandbox), toolbox)
    notebook = toolbox.read_notebook()
    opening = [
        f"Begin your session on task {task!r} along the direction {direction.name!r}.",
        "Your notebook from earlier sessions (your own notes):",
        f"<notebook>\n{neutralise(notebook)}\n</notebook>"
        if notebook
        else "(empty: this is your first session)",
    ]
    messages: list[Message] = [UserMessage("\n".join(opening))]

    def sync() -> None:
        report.tool_calls = toolbox.calls
        report.submissions = toolbox.submissions
        report.results = list(toolbox.results)
        report.tokens_in, report.tokens_out = meter.input_tokens, meter.output_tokens
        report.dollars = meter.dollars
        report.seconds = time.monotonic() - t0

    def over_budget() -> str | None:
        if time.monotonic() - t0 >= budget.max_seconds:
            return "budget:seconds"
        if budget.max_tokens is not None and meter.input_tokens + meter.output_tokens >= budget.max_tokens:
            return "budget:tokens"
        if budget.max_dollars is not None and meter.dollars >= budget.max_dollars:
            return "budget:dollars"
        if report.turns >= budget.max_turns:
            return "budget:turns"
        if toolbox.refused_submissions >= MAX_REFUSED_SUBMISSIONS:
            return "budget:submissions"
        return None

    stop = ""
    cut_offs = paused = 0
    transcript_limit = MAX_TRANSCRIPT_CHARS
    while not stop:
        reason = over_budget()
        if reason:
            stop = reason
            break
        max_tokens = MAX_OUTPUT_TOKENS
        if budget.max_tokens is not None:
            left = budget.max_tokens - meter.input_tokens - meter.output_tokens
            if left < MIN_OUTPUT_TOKENS:
                # a smaller reply could not hold a tool call: stop rather than pay for a cut-off turn
                stop = "budget:tokens"
                break
            max_tokens = min(max_tokens, left)
        try:
            turn = backend.complete(
                system, bound_transcript(messages, transcript_limit), toolbox.specs, max_tokens
            )
        except Exception as e:  # a failed model call ends the session with the reason, not a traceback
            stop = f"error: {type(e).__name__}: {e}"
            break
        meter.record(backend.model, turn.usage)
        report.turns += 1
        reason = over_budget()
        if reason and reason != "budget:turns":
            # the turn is paid for but the budget is gone: stop without acting on it
            stop = reason
            sync()
            break
        step = handle_turn(turn, max_tokens, cut_offs, paused)
        cut_offs = cut_offs + 1 if step.cut_off else 0
        paused = paused + 1 if turn.stop_reason == "pause_turn" else 0
        if step.shrink_transcript:
            transcript_limit = max(transcript_limit // 2, 10_000)
        if step.replay is not None and not step.replay.is_empty:  # never send an empty message back
            messages.append(step.replay)
        if step.execute:
            results = []
            for call in turn.tool_calls:
                out = toolbox.call(call.name, call.arguments)
                results.append(ToolResult(call.id, out.text, out.is_error))
            messages.append(ToolResultMessage(results))
        if step.tell is not None:
            messages.append(UserMessage(step.tell))
        stop = step.stop
        sync()
        if on_progress is not None:
            on_progress(replace(report, results=list(report.results)))
    sync()
    report.stop_reason = stop
    return report

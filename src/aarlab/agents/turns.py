"""What the LLM researcher's loop does with one model turn, for every stop reason the providers document."""

from __future__ import annotations

from dataclasses import dataclass

from aarlab.agents.llm.base import AssistantMessage, Turn

#: Turns in a row cut off at the output limit (or the context window) before the session stops.
MAX_CUT_OFF_TURNS = 3
#: Paused turns (``pause_turn``) in a row that are resumed before the session stops.
MAX_PAUSED_TURNS = 5


@dataclass(frozen=True)
class TurnStep:
    """What the loop does with one model turn.

    ``replay``: the assistant message to put in the transcript (None: nothing; an empty one is never
    sent); ``execute``: run the turn's tool calls; ``tell``: a user message to add; ``stop``: the
    session's stop reason (empty: go on); ``cut_off``: the turn was cut short (counts toward
    ``MAX_CUT_OFF_TURNS``); ``shrink_transcript``: the prompt filled the context window.
    """

    replay: AssistantMessage | None
    execute: bool = False
    tell: str | None = None
    stop: str = ""
    cut_off: bool = False
    shrink_transcript: bool = False


def _cut_off_notice(turn: Turn, why: str) -> str:
    if turn.tool_calls:
        names = ", ".join(sorted({c.name for c in turn.tool_calls}))
        return (
            f"Your previous reply was cut off {why} while you were writing a call to {names}. The call was "
            "NOT executed (its arguments were incomplete) and nothing was changed. Issue it again with "
            "shorter arguments (split long content into several smaller calls), or say less before it."
        )
    return f"Your previous reply was cut off {why}; continue concisely."


def handle_turn(turn: Turn, max_tokens: int, cut_offs: int, paused: int) -> TurnStep:
    """Decide, for every stop reason the providers document, what the loop does with ``turn``.

    A turn cut off at the output limit or the context window is never acted on: its last tool call may
    be a fragment (a 37-character prefix of a 2,500-character notebook is still valid JSON to a lenient
    parser), so no call of that turn runs; the model is told, and the transcript keeps only its text.
    """
    kind = turn.stop_reason
    text_only = AssistantMessage(text=turn.text)
    full = AssistantMessage.from_turn(turn)
    if kind in ("end_turn", "stop_sequence", "tool_use"):
        if turn.tool_calls:
            return TurnStep(full, execute=True)
        if kind == "tool_use":  # said it would call a tool but sent none: ask again once more
            return TurnStep(
                text_only,
                tell="Your reply said it used a tool but contained no tool call; call the tool, or end your "
                "turn without one if you are done.",
                cut_off=True,
                stop=_repeated(cut_offs, "tool_use without a tool call"),
            )
        return TurnStep(text_only, stop="done" if kind == "end_turn" else "done: stop_sequence")
    if kind == "max_tokens":
        return TurnStep(
            text_only,
            tell=_cut_off_notice(turn, f"by the output limit ({max_tokens} tokens)"),
            cut_off=True,
            stop=_repeated(cut_offs, f"cut off at the output limit ({max_tokens} tokens)"),
        )
    if kind == "context_window_exceeded":
        return TurnStep(
            text_only,
            tell=_cut_off_notice(turn, "because the conversation filled the model's context window")
            + " Older tool outputs were dropped to make room.",
            cut_off=True,
            shrink_transcript=True,
            stop=_repeated(cut_offs, "the conversation filled the model's context window"),
        )
    if kind == "pause_turn":
        # the API paused a long turn: send it back as it is and the model resumes where it stopped
        if turn.tool_calls:
            return TurnStep(full, execute=True)
        if paused + 1 >= MAX_PAUSED_TURNS:
            return TurnStep(None, stop=f"model: paused {MAX_PAUSED_TURNS} turns in a row (pause_turn)")
        return TurnStep(AssistantMessage(text=turn.text))
    if kind == "refusal":
        return TurnStep(None, stop="model: refusal (the model declined to continue; no tool call was run)")
    if kind == "content_filter":
        return TurnStep(
            None, stop="model: content_filter (the provider withheld the reply; no tool call was run)"
        )
    return TurnStep(
        None,
        stop=f"model: unknown stop reason {turn.raw_stop_reason!r} (no provider documents it; the turn "
        "was not acted on)",
    )


def _repeated(cut_offs: int, what: str) -> str:
    """The stop reason once ``what`` happened ``MAX_CUT_OFF_TURNS`` times in a row, else ``""``."""
    if cut_offs + 1 >= MAX_CUT_OFF_TURNS:
        return f"model: {what}, {MAX_CUT_OFF_TURNS} turns in a row"
    return ""

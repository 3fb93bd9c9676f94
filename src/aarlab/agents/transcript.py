"""Keeping an LLM researcher's transcript bounded: shorten old tool outputs, then drop old exchanges."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from aarlab.agents.llm.base import AssistantMessage, Message, ToolResultMessage

#: Characters of transcript kept before old tool outputs are shortened / old exchanges dropped.
MAX_TRANSCRIPT_CHARS = 150_000
#: The most recent messages whose tool outputs are never shortened.
KEEP_RECENT = 6


def _chars(messages: Sequence[Message]) -> int:
    total = 0
    for m in messages:
        if isinstance(m, ToolResultMessage):
            total += sum(len(r.content) for r in m.results)
        elif isinstance(m, AssistantMessage):
            total += len(m.text) + sum(len(json.dumps(c.arguments)) for c in m.tool_calls)
        else:
            total += len(m.text)
    return total


def bound_transcript(messages: list[Message], limit: int = MAX_TRANSCRIPT_CHARS) -> list[Message]:
    """Shorten old tool outputs, then drop the oldest exchanges, until the transcript fits ``limit``.

    The first message (task + notebook) and the last ``KEEP_RECENT`` messages are kept whole; an exchange
    (an assistant message and what follows it up to the next one) is dropped as a unit, so every tool
    call keeps its result and roles still alternate.
    """
    if _chars(messages) <= limit:
        return messages
    out = list(messages)
    for i in range(1, max(1, len(out) - KEEP_RECENT)):
        m = out[i]
        if isinstance(m, ToolResultMessage):
            out[i] = ToolResultMessage(
                [
                    replace(
                        r, content=f"[older tool output dropped to save context ({len(r.content)} chars)]"
                    )
                    if len(r.content) > 200
                    else r
                    for r in m.results
                ]
            )
        if _chars(out) <= limit:
            return out
    while _chars(out) > limit and len(out) > KEEP_RECENT + 1:
        j = 2
        while j < len(out) and not isinstance(out[j], AssistantMessage):
            j += 1
        if j >= len(out) - KEEP_RECENT:
            break
        del out[1:j]
    return out

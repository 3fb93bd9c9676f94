"""Provider-neutral types for tool-using LLM turns, a price table, a usage meter and a retry helper.

Backends translate these types to and from their provider's wire format, so the researcher loop never sees
provider-specific objects.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from aarlab.testbed.errors import AarlabError

log = logging.getLogger(__name__)

StopReason = Literal["end_turn", "tool_use", "max_tokens", "other"]


class LLMBackendError(AarlabError):
    """An LLM call failed (no key, retry budget spent, bad request); the message says what to do."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call; `input_schema` is a JSON Schema object for the arguments."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One tool call requested by the model, with its arguments parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Usage:
    """Tokens billed for one call (input includes prompt-cache reads/writes where reported)."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Turn:
    """One model response: text, requested tool calls, usage and a normalised stop reason."""

    text: str
    tool_calls: list[ToolCall]
    usage: Usage
    stop_reason: StopReason
    raw_stop_reason: str | None = None


@dataclass(frozen=True)
class UserMessage:
    text: str
    role: Literal["user"] = "user"


@dataclass(frozen=True)
class AssistantMessage:
    """A previous model turn, replayed to the model (build it with `AssistantMessage.from_turn`)."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    role: Literal["assistant"] = "assistant"

    @classmethod
    def from_turn(cls, turn: Turn) -> AssistantMessage:
        return cls(text=turn.text, tool_calls=list(turn.tool_calls))


@dataclass(frozen=True)
class ToolResult:
    tool_call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolResultMessage:
    """Results of the tool calls of the preceding assistant message."""

    results: list[ToolResult]
    role: Literal["tool"] = "tool"


Message = UserMessage | AssistantMessage | ToolResultMessage


@runtime_checkable
class LLMBackend(Protocol):
    """A chat model with tool use. `meter` accumulates the usage of every call made through the backend."""

    model: str
    meter: UsageMeter

    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec], max_tokens: int) -> Turn:
        """Send the conversation and return the model's next turn."""
        ...


# Dollars per million tokens (input, output), list prices. Longest matching prefix wins, so dated snapshots
# ("claude-sonnet-4-20250514", "gpt-4o-2024-08-06") price like their family.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-3-haiku": (0.25, 1.25),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4o": (2.5, 10.0),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1": (2.0, 8.0),
    "o3-mini": (1.1, 4.4),
    "o4-mini": (1.1, 4.4),
    "o3": (2.0, 8.0),
}


@dataclass
class PriceTable:
    """Dollars per million input/output tokens per model id; unknown models cost 0 and are flagged."""

    prices: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def lookup(self, model: str) -> tuple[float, float] | None:
        if model in self.prices:
            return self.prices[model]
        matches = [k for k in self.prices if model.startswith(k)]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, usage: Usage) -> tuple[float, bool]:
        """(dollars, known): `known` is False when the model has no price (the cost is then 0)."""
        price = self.lookup(model)
        if price is None:
            return 0.0, False
        return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1e6, True


@dataclass
class UsageMeter:
    """Running totals of tokens and dollars; `unpriced_models` lists models whose calls were counted at $0."""

    prices: PriceTable = field(default_factory=PriceTable)
    input_tokens: int = 0
    output_tokens: int = 0
    dollars: float = 0.0
    calls: int = 0
    unpriced_models: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def has_unpriced(self) -> bool:
        return bool(self.unpriced_models)

    def record(self, model: str, usage: Usage) -> float:
        """Add one call's usage; return its dollar cost."""
        dollars, known = self.prices.cost(model, usage)
        with self._lock:  # one meter may be shared by agents running in threads
            if not known:
                self.unpriced_models.add(model)
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.dollars += dollars
            self.calls += 1
        return dollars

    def summary(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "dollars": round(self.dollars, 6),
            "unpriced_models": sorted(self.unpriced_models),
        }


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


T = TypeVar("T")


def retry_after_seconds(exc: Exception) -> float | None:
    """The wait a server asked for (`retry-after-ms` or numeric `retry-after` header) in an SDK error."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after") is not None:
            return float(headers["retry-after"])
    except (TypeError, ValueError):  # an HTTP date: fall back to our own backoff
        return None
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: delay = min(max_delay, base_delay · 2^attempt) · U(0.5, 1)."""

    max_retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2**attempt) * random.uniform(0.5, 1.0)


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    classify: Callable[[Exception], str | None],
    describe: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn`, retrying transient failures. `classify(exc)` returns a short reason if `exc` is retryable,
    else None (then it propagates). The wait is the policy's backoff, or the server's `retry-after` if longer
    (capped at `max_delay`). After the budget, raise LLMBackendError naming the last failure."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            reason = classify(exc)
            if reason is None:
                raise
            if attempt >= policy.max_retries:
                raise LLMBackendError(
                    f"{describe} failed after {attempt + 1} attempts: {reason}. "
                    "The service is overloaded or failing; try again later, raise max_retries, or check "
                    "base_url."
                ) from exc
            wait = policy.delay(attempt)
            server_wait = retry_after_seconds(exc)
            if server_wait is not None:
                wait = min(policy.max_delay, max(wait, server_wait))
            log.warning(
                "%s: %s; retry %d/%d in %.2fs", describe, reason, attempt + 1, policy.max_retries, wait
            )
            sleep(wait)
            attempt += 1

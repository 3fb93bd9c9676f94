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
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from aarlab.testbed.errors import AarlabError

log = logging.getLogger(__name__)

#: Why a model turn ended, normalised over providers (each provider's documented reasons map onto these;
#: see ``ANTHROPIC_STOP`` / ``OPENAI_STOP`` in the backends). ``unknown`` is a reason no provider documents:
#: the loop stops on it rather than guessing.
StopReason = Literal[
    "end_turn",  # the model finished its turn (Anthropic end_turn, OpenAI stop)
    "stop_sequence",  # a custom stop sequence was generated (Anthropic stop_sequence)
    "tool_use",  # the model asks for tool calls (Anthropic tool_use, OpenAI tool_calls / function_call)
    "max_tokens",  # cut off at the output limit (Anthropic max_tokens, OpenAI length): content may be partial
    "pause_turn",  # a long-running turn was paused; send it back as is to let the model continue
    "refusal",  # the model declined (Anthropic refusal)
    "context_window_exceeded",  # the input filled the context (model_context_window_exceeded)
    "content_filter",  # content was withheld by the provider's filter (OpenAI content_filter)
    "unknown",
]


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
    """Tokens billed for one call, by class: each class has its own price.

    ``input_tokens`` are uncached prompt tokens (full input rate), ``cache_read_tokens`` prompt tokens
    served from the provider's prompt cache (Anthropic ``cache_read_input_tokens``, OpenAI
    ``prompt_tokens_details.cached_tokens``), ``cache_write_tokens`` prompt tokens written to the cache
    for 5 minutes (Anthropic ``cache_creation_input_tokens``), ``cache_write_1h_tokens`` those written
    for an hour (Anthropic ``cache_creation.ephemeral_1h_input_tokens``). ``prompt_tokens`` is their sum.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Every input token of the call, cached or not."""
        return (
            self.input_tokens + self.cache_read_tokens + self.cache_write_tokens + self.cache_write_1h_tokens
        )


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

    @property
    def is_empty(self) -> bool:
        """No text (or only whitespace) and no tool calls: real APIs reject such a message with HTTP 400."""
        return not self.text.strip() and not self.tool_calls


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


class ModelPrice(NamedTuple):
    """Dollars per million tokens of each class. A cache rate left None is charged at the input rate."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None

    def dollars(self, usage: Usage) -> float:
        """What ``usage`` costs, each token class at its own rate."""
        read = self.input if self.cache_read is None else self.cache_read
        write = self.input if self.cache_write is None else self.cache_write
        write_1h = write if self.cache_write_1h is None else self.cache_write_1h
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * read
            + usage.cache_write_tokens * write
            + usage.cache_write_1h_tokens * write_1h
        ) / 1e6


def _claude(inp: float, out: float) -> ModelPrice:
    # Anthropic: cache reads 0.1x the input rate, 5-minute cache writes 1.25x, 1-hour writes 2x
    return ModelPrice(inp, out, round(inp * 0.1, 6), round(inp * 1.25, 6), round(inp * 2.0, 6))


# List prices, dollars per million tokens. Longest matching prefix wins, so dated snapshots
# ("claude-sonnet-4-20250514", "gpt-4o-2024-08-06") price like their family. OpenAI bills no cache writes
# (cached prompt tokens are read at the rate given; writes are plain input).
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-5": _claude(5.0, 25.0),
    "claude-opus-4": _claude(15.0, 75.0),
    "claude-sonnet-4": _claude(3.0, 15.0),
    "claude-3-7-sonnet": _claude(3.0, 15.0),
    "claude-3-5-sonnet": _claude(3.0, 15.0),
    "claude-haiku-4-5": _claude(1.0, 5.0),
    "claude-3-5-haiku": _claude(0.8, 4.0),
    "claude-3-haiku": _claude(0.25, 1.25),
    "gpt-4o-mini": ModelPrice(0.15, 0.6, 0.075),
    "gpt-4o": ModelPrice(2.5, 10.0, 1.25),
    "gpt-4.1-nano": ModelPrice(0.1, 0.4, 0.025),
    "gpt-4.1-mini": ModelPrice(0.4, 1.6, 0.1),
    "gpt-4.1": ModelPrice(2.0, 8.0, 0.5),
    "o3-mini": ModelPrice(1.1, 4.4, 0.55),
    "o4-mini": ModelPrice(1.1, 4.4, 0.275),
    "o3": ModelPrice(2.0, 8.0, 0.5),
}


@dataclass
class PriceTable:
    """Dollars per million tokens per model id; unknown models cost 0 and are flagged.

    A value is a ``ModelPrice`` or a tuple ``(input, output[, cache_read[, cache_write]])``.
    """

    prices: dict[str, ModelPrice | tuple[float, ...]] = field(
        default_factory=lambda: dict[str, ModelPrice | tuple[float, ...]](DEFAULT_PRICES)
    )

    def lookup(self, model: str) -> ModelPrice | None:
        if model in self.prices:
            return ModelPrice(*self.prices[model])
        matches = [k for k in self.prices if model.startswith(k)]
        return ModelPrice(*self.prices[max(matches, key=len)]) if matches else None

    def cost(self, model: str, usage: Usage) -> tuple[float, bool]:
        """(dollars, known): `known` is False when the model has no price (the cost is then 0)."""
        price = self.lookup(model)
        if price is None:
            return 0.0, False
        return price.dollars(usage), True


@dataclass
class UsageMeter:
    """Running totals of tokens and dollars; `unpriced_models` lists models whose calls were counted at $0.

    ``input_tokens`` counts every prompt token (cached or not); ``cache_read_tokens`` and
    ``cache_write_tokens`` say how many of them were cache reads / writes (priced at their own rates).
    """

    prices: PriceTable = field(default_factory=PriceTable)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
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
            self.input_tokens += usage.prompt_tokens
            self.cache_read_tokens += usage.cache_read_tokens
            self.cache_write_tokens += usage.cache_write_tokens + usage.cache_write_1h_tokens
            self.output_tokens += usage.output_tokens
            self.dollars += dollars
            self.calls += 1
        return dollars

    def summary(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
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

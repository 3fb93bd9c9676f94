"""Claude via the Anthropic Messages API with tool use (official `anthropic` SDK)."""

from __future__ import annotations

import os
from typing import Any

import anthropic

from aarlab.agents.llm.base import (
    AssistantMessage,
    LLMBackendError,
    Message,
    PriceTable,
    RetryPolicy,
    StopReason,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    Turn,
    Usage,
    UsageMeter,
    UserMessage,
    call_with_retries,
    is_retryable_status,
)

API_KEY_ENV = "ANTHROPIC_API_KEY"
DEFAULT_MODEL = "claude-sonnet-4-5"
#: Every ``stop_reason`` the Messages API documents, mapped explicitly; anything else is ``unknown``.
ANTHROPIC_STOP: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "pause_turn": "pause_turn",
    "refusal": "refusal",
    "model_context_window_exceeded": "context_window_exceeded",
}


def to_anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Translate to Messages API format; tool results become `tool_result` blocks in a user message and
    consecutive same-role messages are merged (the API expects alternating roles). An assistant message
    with neither text nor tool calls is left out: the API rejects ``content: []`` with HTTP 400."""
    out: list[dict[str, Any]] = []
    for m in messages:
        blocks: list[dict[str, Any]]
        if isinstance(m, UserMessage):
            role, blocks = "user", [{"type": "text", "text": m.text}]
        elif isinstance(m, AssistantMessage):
            if m.is_empty:
                continue
            role = "assistant"
            blocks = [{"type": "text", "text": m.text}] if m.text.strip() else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls
            ]
        elif isinstance(m, ToolResultMessage):
            role = "user"
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": r.tool_call_id,
                    "content": r.content,
                    "is_error": r.is_error,
                }
                for r in m.results
            ]
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"unknown message type {type(m).__name__}")
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _classify(exc: Exception) -> str | None:
    if isinstance(exc, anthropic.APIStatusError) and is_retryable_status(exc.status_code):
        return f"HTTP {exc.status_code}: {exc.message}"
    if isinstance(exc, anthropic.APIConnectionError):
        return f"connection error: {exc}"
    return None


class AnthropicBackend:
    """`complete()` sends one Messages API request; transient failures (429, 5xx, connection) are retried
    with exponential backoff (`retry`), and every call's usage is recorded in `meter`."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 600.0,
        meter: UsageMeter | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        key = api_key or os.environ.get(API_KEY_ENV)
        if not key:
            raise LLMBackendError(
                f"no Anthropic API key: set the {API_KEY_ENV} environment variable "
                f"(e.g. `export {API_KEY_ENV}=sk-ant-...`) or pass api_key"
            )
        self.model = model
        self.retry = retry or RetryPolicy()
        self.meter = meter or UsageMeter(prices=prices or PriceTable())
        # The SDK's own retries are off: ours are explicit, configurable and report a clear error at the end.
        self.client = anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=0, timeout=timeout)

    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec], max_tokens: int) -> Turn:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": to_anthropic_messages(messages),
        }
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools
            ]
        try:
            resp = call_with_retries(
                lambda: self.client.messages.create(**kwargs),
                policy=self.retry,
                classify=_classify,
                describe=f"Anthropic call ({self.model})",
            )
        except anthropic.AuthenticationError as exc:
            raise LLMBackendError(
                f"Anthropic rejected the API key (HTTP 401); check {API_KEY_ENV}: {exc.message}"
            ) from exc
        except anthropic.APIStatusError as exc:
            raise LLMBackendError(
                f"Anthropic call failed with HTTP {exc.status_code}: {exc.message}"
            ) from exc
        return self._to_turn(resp)

    def _to_turn(self, resp: Any) -> Turn:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in resp.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                args = block.input if isinstance(block.input, dict) else {"input": block.input}
                calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(args)))
        u = resp.usage
        # input_tokens excludes the cache's tokens: each class is billed at its own rate
        writes = int(getattr(u, "cache_creation_input_tokens", 0) or 0)
        # 1-hour cache writes cost more than 5-minute ones; the split is in `cache_creation` when reported
        long_writes = int(getattr(getattr(u, "cache_creation", None), "ephemeral_1h_input_tokens", 0) or 0)
        usage = Usage(
            input_tokens=int(u.input_tokens or 0),
            output_tokens=int(u.output_tokens or 0),
            cache_read_tokens=int(getattr(u, "cache_read_input_tokens", 0) or 0),
            cache_write_tokens=writes - min(long_writes, writes),
            cache_write_1h_tokens=min(long_writes, writes),
        )
        self.meter.record(self.model, usage)
        raw = resp.stop_reason
        return Turn(
            text="".join(texts),
            tool_calls=calls,
            usage=usage,
            stop_reason=ANTHROPIC_STOP.get(raw or "", "unknown"),
            raw_stop_reason=raw,
        )

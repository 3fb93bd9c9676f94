"""Any OpenAI-compatible chat-completions endpoint with tools (OpenAI, vLLM, llama.cpp server, Ollama)."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlparse

import openai

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

API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_MODEL = "gpt-4o"
DUMMY_KEY = "sk-no-key-required"
#: Every ``finish_reason`` the chat-completions API documents, mapped explicitly; anything else is
#: ``unknown``.
OPENAI_STOP: dict[str, StopReason] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",  # the deprecated single-function form (``message.function_call``)
    "length": "max_tokens",
    "content_filter": "content_filter",
}


def is_self_hosted(base_url: str | None) -> bool:
    """True for a base_url that is not OpenAI's own API (vLLM / llama.cpp / Ollama): no key needed."""
    if not base_url:
        return False
    host = (urlparse(base_url).hostname or "").lower()
    return bool(host) and not host.endswith("openai.com")


def to_openai_messages(system: str, messages: list[Message]) -> list[dict[str, Any]]:
    """Translate to chat-completions format. An assistant message with neither text nor tool calls is left
    out: servers reject ``content: null`` without ``tool_calls`` with HTTP 400."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        if isinstance(m, UserMessage):
            out.append({"role": "user", "content": m.text})
        elif isinstance(m, AssistantMessage):
            if m.is_empty:
                continue
            msg: dict[str, Any] = {"role": "assistant", "content": m.text if m.text.strip() else None}
            if m.tool_calls:
                msg["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in m.tool_calls
                ]
            out.append(msg)
        elif isinstance(m, ToolResultMessage):
            out.extend(
                {
                    "role": "tool",
                    "tool_call_id": r.tool_call_id,
                    "content": f"ERROR: {r.content}" if r.is_error else r.content,
                }
                for r in m.results
            )
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"unknown message type {type(m).__name__}")
    return out


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """Tool arguments arrive as a JSON string; small local models sometimes emit invalid JSON, which is kept
    verbatim under `_unparsed` so the agent can report it back to the model instead of crashing."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {"_unparsed": raw}
    return value if isinstance(value, dict) else {"_unparsed": raw}


def _classify(exc: Exception) -> str | None:
    if isinstance(exc, openai.APIStatusError) and is_retryable_status(exc.status_code):
        return f"HTTP {exc.status_code}: {exc.message}"
    if isinstance(exc, openai.APIConnectionError):
        return f"connection error: {exc}"
    return None


class OpenAIBackend:
    """`complete()` sends one chat-completions request with `tools`; transient failures (429, 5xx, connection)
    are retried with exponential backoff (`retry`), and every call's usage is recorded in `meter`.

    `base_url` points at a self-hosted server (e.g. ``http://localhost:8000/v1`` for vLLM,
    ``http://localhost:11434/v1`` for Ollama); such servers need no key, so a dummy one is used when
    OPENAI_API_KEY is unset. `max_tokens_param` defaults to ``max_completion_tokens`` for OpenAI (required
    by its reasoning models) and ``max_tokens`` for self-hosted servers.
    """

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
        max_tokens_param: str | None = None,
    ) -> None:
        key = api_key or os.environ.get(API_KEY_ENV)
        if not key:
            if not is_self_hosted(base_url):
                raise LLMBackendError(
                    f"no OpenAI API key: set the {API_KEY_ENV} environment variable "
                    f"(e.g. `export {API_KEY_ENV}=sk-...`), pass api_key, or pass base_url for a self-hosted "
                    "OpenAI-compatible server (vLLM, llama.cpp, Ollama), which needs no key"
                )
            key = DUMMY_KEY
        self.model = model
        self.base_url = base_url
        self.retry = retry or RetryPolicy()
        self.meter = meter or UsageMeter(prices=prices or PriceTable())
        self.max_tokens_param = max_tokens_param or (
            "max_tokens" if is_self_hosted(base_url) else "max_completion_tokens"
        )
        # The SDK's own retries are off: ours are explicit, configurable and report a clear error at the end.
        self.client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout)

    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec], max_tokens: int) -> Turn:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(system, messages),
            self.max_tokens_param: max_tokens,
        }
        if tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }
                for t in tools
            ]
        where = self.base_url or "api.openai.com"
        try:
            resp = call_with_retries(
                lambda: self.client.chat.completions.create(**kwargs),
                policy=self.retry,
                classify=_classify,
                describe=f"OpenAI-compatible call ({self.model} at {where})",
            )
        except openai.AuthenticationError as exc:
            raise LLMBackendError(
                f"{where} rejected the API key (HTTP 401); check {API_KEY_ENV}: {exc.message}"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMBackendError(
                f"call to {where} failed with HTTP {exc.status_code}: {exc.message}"
            ) from exc
        return self._to_turn(resp)

    def _to_turn(self, resp: Any) -> Turn:
        if not resp.choices:
            raise LLMBackendError(f"the server returned no choices for model {self.model!r}")
        choice = resp.choices[0]
        msg = choice.message
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=parse_arguments(c.function.arguments))
            for c in (msg.tool_calls or [])
            if getattr(c, "function", None) is not None
        ]
        legacy = getattr(msg, "function_call", None)
        if legacy is not None and not calls:  # finish_reason "function_call": one call, no id
            calls.append(
                ToolCall(
                    id=f"call_{resp.id or 'legacy'}",
                    name=legacy.name,
                    arguments=parse_arguments(legacy.arguments),
                )
            )
        u = resp.usage
        prompt = int(getattr(u, "prompt_tokens", 0) or 0)
        details = getattr(u, "prompt_tokens_details", None)
        cached = min(prompt, int(getattr(details, "cached_tokens", 0) or 0))
        # prompt_tokens includes the cached ones: each class is billed at its own rate
        usage = Usage(
            input_tokens=prompt - cached,
            output_tokens=int(getattr(u, "completion_tokens", 0) or 0),
            cache_read_tokens=cached,
        )
        self.meter.record(self.model, usage)
        raw = choice.finish_reason
        stop = OPENAI_STOP.get(raw or "", "unknown")
        if calls and stop == "end_turn":  # some servers report "stop" even when they emitted tool calls
            stop = "tool_use"
        refusal = getattr(msg, "refusal", None)
        if refusal and not calls and not msg.content:  # the model declined: finish_reason is "stop"
            return Turn(text="", tool_calls=[], usage=usage, stop_reason="refusal", raw_stop_reason=raw)
        return Turn(
            text=msg.content or "", tool_calls=calls, usage=usage, stop_reason=stop, raw_stop_reason=raw
        )

"""Backend lookup by name: `get_backend("anthropic" | "openai", model, base_url=...)`."""

from __future__ import annotations

from typing import Any, Protocol

from aarlab.agents.llm.base import LLMBackend
from aarlab.registry import Registry


class BackendFactory(Protocol):
    """Builds a backend for ``model`` (None: the backend's default) at ``base_url`` (None: the vendor's)."""

    def __call__(self, model: str | None, base_url: str | None, **kwargs: Any) -> LLMBackend: ...


#: LLM backends by name; each factory imports its SDK only when called.
BACKENDS: Registry[BackendFactory] = Registry("LLM backend")


@BACKENDS.decorator("anthropic")
def build_anthropic(model: str | None, base_url: str | None, **kwargs: Any) -> LLMBackend:
    """Anthropic's Messages API (``AnthropicBackend``)."""
    from aarlab.agents.llm.anthropic_backend import DEFAULT_MODEL, AnthropicBackend

    return AnthropicBackend(model or DEFAULT_MODEL, base_url=base_url, **kwargs)


@BACKENDS.decorator("openai")
def build_openai(model: str | None, base_url: str | None, **kwargs: Any) -> LLMBackend:
    """OpenAI's Chat Completions API or any server that speaks it (``OpenAIBackend``)."""
    from aarlab.agents.llm.openai_backend import DEFAULT_MODEL, OpenAIBackend

    return OpenAIBackend(model or DEFAULT_MODEL, base_url=base_url, **kwargs)


def get_backend(
    name: str, model: str | None = None, base_url: str | None = None, **kwargs: Any
) -> LLMBackend:
    """Build a backend. `model` defaults to the backend's default; extra kwargs (api_key, retry, meter,
    prices, timeout, ...) go to the backend's constructor. The SDK is imported only for the chosen backend.
    An unknown ``name`` raises ``UnknownNameError`` listing the backends."""
    return BACKENDS.get(name)(model, base_url, **kwargs)

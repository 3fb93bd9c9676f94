"""Backend lookup by name: `get_backend("anthropic" | "openai", model, base_url=...)`."""

from __future__ import annotations

from typing import Any

from aarlab.agents.llm.base import LLMBackend
from aarlab.testbed.errors import unknown

BACKENDS = ("anthropic", "openai")


def get_backend(
    name: str, model: str | None = None, base_url: str | None = None, **kwargs: Any
) -> LLMBackend:
    """Build a backend. `model` defaults to the backend's default; extra kwargs (api_key, retry, meter,
    prices, timeout, ...) go to the backend's constructor. The SDK is imported only for the chosen backend."""
    if name == "anthropic":
        from aarlab.agents.llm.anthropic_backend import DEFAULT_MODEL, AnthropicBackend

        return AnthropicBackend(model or DEFAULT_MODEL, base_url=base_url, **kwargs)
    if name == "openai":
        from aarlab.agents.llm.openai_backend import DEFAULT_MODEL as OPENAI_DEFAULT
        from aarlab.agents.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(model or OPENAI_DEFAULT, base_url=base_url, **kwargs)
    raise unknown("LLM backend", name, list(BACKENDS))

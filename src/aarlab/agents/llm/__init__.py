"""Provider-neutral LLM backends (Anthropic Messages API, OpenAI-compatible chat) with usage metering."""

from aarlab.agents.llm.base import (
    AssistantMessage,
    LLMBackend,
    LLMBackendError,
    Message,
    PriceTable,
    ToolCall,
    ToolResult,
    ToolResultMessage,
    ToolSpec,
    Turn,
    Usage,
    UsageMeter,
    UserMessage,
)
from aarlab.agents.llm.registry import BACKENDS, get_backend

__all__ = [
    "BACKENDS",
    "AssistantMessage",
    "LLMBackend",
    "LLMBackendError",
    "Message",
    "PriceTable",
    "ToolCall",
    "ToolResult",
    "ToolResultMessage",
    "ToolSpec",
    "Turn",
    "Usage",
    "UsageMeter",
    "UserMessage",
    "get_backend",
]

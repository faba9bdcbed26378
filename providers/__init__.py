"""hearth's AI providers: LLM generation, structured output and embeddings.

The concrete providers load their vendor SDK on first use, so importing the interfaces
(for type hints, or to read a stored :class:`LLMResponse`) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from providers.base import EmbeddingProvider, FinishReason, LLMProvider, LLMResponse, TokenUsage

if TYPE_CHECKING:
    from providers.anthropic_provider import AnthropicProvider
    from providers.openai_embeddings import OpenAIEmbeddingProvider
    from providers.openai_provider import OpenAIProvider

_LAZY = {
    "AnthropicProvider": "providers.anthropic_provider",
    "OpenAIProvider": "providers.openai_provider",
    "OpenAIEmbeddingProvider": "providers.openai_embeddings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'providers' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AnthropicProvider",
    "EmbeddingProvider",
    "FinishReason",
    "LLMProvider",
    "LLMResponse",
    "OpenAIEmbeddingProvider",
    "OpenAIProvider",
    "TokenUsage",
]

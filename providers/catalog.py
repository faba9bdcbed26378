"""What hearth knows about the vendors' models: their names, input limits and embedding
sizes.

Used only for checks before a call; a model missing here gets a generous default and the
vendor's own answer decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CLAUDE_MODEL = re.compile(r"^claude-[a-z0-9][a-z0-9.\-]*$")
# Chat model families of the OpenAI API (fine-tuned ones are "ft:<base>:..."); an embedding,
# audio or image model, or another vendor's model, is refused before any call.
_OPENAI_CHAT_MODEL = re.compile(r"^(ft:)?(gpt-|chatgpt-|o\d)[A-Za-z0-9.:_\-]*$")


def is_anthropic_chat_model(model: str) -> bool:
    """Whether ``model`` names an Anthropic (Claude) model."""
    return _CLAUDE_MODEL.match(model) is not None


def is_openai_chat_model(model: str) -> bool:
    """Whether ``model`` names a chat model of the OpenAI API (fine-tuned ones included)."""
    return _OPENAI_CHAT_MODEL.match(model) is not None


DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-6"
DEFAULT_OPENAI_MODEL = "gpt-5.4-mini"
DEFAULT_OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"

ANTHROPIC_INPUT_TOKENS = 200_000
"""The context window of current Claude models without the long-context option."""

UNKNOWN_MODEL_INPUT_TOKENS = 1_000_000
"""The input limit assumed for a model not listed here: large, so only absurd input is refused."""

# Longest prefix first: "gpt-4.1" must win over "gpt-4".
_OPENAI_INPUT_TOKENS: tuple[tuple[str, int], ...] = (
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4", 8_192),
    ("gpt-3.5", 16_385),
    ("gpt-5", 272_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
)


@dataclass(frozen=True)
class EmbeddingModelInfo:
    """An OpenAI embedding model's vector size and limits."""

    native_dimensions: int
    accepts_dimensions: bool
    max_input_tokens: int = 8_191


OPENAI_EMBEDDING_MODELS: dict[str, EmbeddingModelInfo] = {
    "text-embedding-3-small": EmbeddingModelInfo(1536, accepts_dimensions=True),
    "text-embedding-3-large": EmbeddingModelInfo(3072, accepts_dimensions=True),
    "text-embedding-ada-002": EmbeddingModelInfo(1536, accepts_dimensions=False),
}

OPENAI_EMBEDDING_MAX_INPUTS = 2048
"""The most texts one embeddings request may carry."""

OPENAI_EMBEDDING_MAX_REQUEST_TOKENS = 300_000
"""The most tokens, summed over its inputs, one embeddings request may carry."""


def openai_input_tokens(model: str) -> int:
    """The input token limit of an OpenAI chat model (a generous default when unknown)."""
    for prefix, limit in _OPENAI_INPUT_TOKENS:
        if model.startswith(prefix):
            return limit
    return UNKNOWN_MODEL_INPUT_TOKENS


def openai_embedding_model(model: str) -> EmbeddingModelInfo | None:
    """What is known of an OpenAI embedding model, or ``None`` for one not listed."""
    return OPENAI_EMBEDDING_MODELS.get(model)

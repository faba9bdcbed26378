"""A fault-scriptable fake of the Anthropic and OpenAI APIs for tests (see ``server``)."""

from tests.fakes.server import (
    ANTHROPIC,
    OPENAI_CHAT,
    OPENAI_EMBEDDINGS,
    FakeProviderServer,
    RecordedRequest,
    Reply,
)

__all__ = [
    "ANTHROPIC",
    "OPENAI_CHAT",
    "OPENAI_EMBEDDINGS",
    "FakeProviderServer",
    "RecordedRequest",
    "Reply",
]

"""The providers against the real Anthropic and OpenAI APIs.

Each test skips with a one-line reason when its vendor's key is not in the environment.
Models can be chosen with ``HEARTH_TEST_ANTHROPIC_MODEL``, ``HEARTH_TEST_OPENAI_MODEL`` and
``HEARTH_TEST_OPENAI_EMBEDDING_MODEL``; the defaults are small, cheap ones.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from providers import AnthropicProvider, LLMProvider, OpenAIEmbeddingProvider, OpenAIProvider
from providers.errors import AuthenticationError

pytestmark = pytest.mark.live


class Capital(BaseModel):
    city: str
    country: str


def _key(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.skip(f"{name} is not set")
    return value


@pytest.fixture(params=["anthropic", "openai"])
def llm(request: pytest.FixtureRequest) -> Iterator[LLMProvider]:
    provider: LLMProvider
    if request.param == "anthropic":
        _key("ANTHROPIC_API_KEY")
        model = os.environ.get("HEARTH_TEST_ANTHROPIC_MODEL", "claude-haiku-4-5")
        provider = AnthropicProvider(model=model, timeout=60.0)
    else:
        _key("OPENAI_API_KEY")
        model = os.environ.get("HEARTH_TEST_OPENAI_MODEL", "gpt-5.4-mini")
        provider = OpenAIProvider(model=model, timeout=60.0)
    with provider:
        yield provider


@pytest.fixture
def embedder() -> Iterator[OpenAIEmbeddingProvider]:
    _key("OPENAI_API_KEY")
    model = os.environ.get("HEARTH_TEST_OPENAI_EMBEDDING_MODEL", "text-embedding-3-small")
    with OpenAIEmbeddingProvider(model=model, timeout=60.0) as provider:
        yield provider


def test_generate(llm: LLMProvider) -> None:
    response = llm.generate("Reply with exactly one word, in lower case: pong", max_tokens=1000)
    assert "pong" in response.text.lower()
    assert response.finish_reason == "stop"
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert response.latency_ms > 0
    assert response.request_id


def test_max_tokens_is_respected(llm: LLMProvider) -> None:
    response = llm.generate("Write a 500-word essay about the sea.", max_tokens=16)
    assert response.finish_reason == "max_tokens"
    assert response.usage.output_tokens <= 16


def test_system_prompt_is_followed(llm: LLMProvider) -> None:
    response = llm.generate(
        "What is your name? Answer with the name only.",
        system_prompt="Your name is Zorblax. Never use any other name.",
        max_tokens=1000,
    )
    assert "zorblax" in response.text.lower()


def test_structured_output(llm: LLMProvider) -> None:
    capital, response = llm.generate_structured(
        "Which city is the capital of France?", Capital, max_tokens=2000
    )
    assert capital.city.lower() == "paris"
    assert "france" in capital.country.lower()
    assert response.text


def test_structured_output_through_forced_tool_use() -> None:
    _key("ANTHROPIC_API_KEY")
    model = os.environ.get("HEARTH_TEST_ANTHROPIC_MODEL", "claude-haiku-4-5")
    with AnthropicProvider(model=model, structured_output="tool") as provider:
        capital, _ = provider.generate_structured(
            "Which city is the capital of Japan?", Capital, max_tokens=2000
        )
    assert capital.city.lower() == "tokyo"


def test_a_wrong_key_is_an_authentication_error(llm: LLMProvider) -> None:
    bad: LLMProvider
    if isinstance(llm, AnthropicProvider):
        bad = AnthropicProvider(api_key="sk-wrong-key-for-hearth-tests", model=llm.model_id)
    else:
        bad = OpenAIProvider(api_key="sk-wrong-key-for-hearth-tests", model=llm.model_id)
    with bad, pytest.raises(AuthenticationError) as caught:
        bad.generate("hello", max_tokens=5)
    assert "sk-wrong-key-for-hearth-tests" not in str(caught.value)


def test_embedding_has_the_configured_dimension(embedder: OpenAIEmbeddingProvider) -> None:
    vector = embedder.embed("The quick brown fox jumps over the lazy dog.")
    assert len(vector) == embedder.dimensions
    assert all(math.isfinite(x) for x in vector)


def test_shortened_embeddings() -> None:
    _key("OPENAI_API_KEY")
    with OpenAIEmbeddingProvider(model="text-embedding-3-small", dimensions=256) as provider:
        assert len(provider.embed("hello world")) == 256


def test_batch_embedding(embedder: OpenAIEmbeddingProvider) -> None:
    texts = [
        "How do I reset my password?",
        "I forgot my password and cannot log in.",
        "What is the boiling point of water at sea level?",
    ]
    vectors = embedder.embed_batch(texts)
    assert len(vectors) == 3
    assert all(len(v) == embedder.dimensions for v in vectors)
    # Paraphrases lie closer together than unrelated questions.
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

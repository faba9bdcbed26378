"""OpenAIProvider against the fake Chat Completions API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Generic, TypeVar

import pytest
from pydantic import BaseModel

from providers import LLMResponse, OpenAIProvider
from providers.errors import (
    AuthenticationError,
    ContentFilterError,
    InvalidRequestError,
    StructuredOutputError,
    TransientProviderError,
)
from tests.fakes import replies
from tests.fakes.server import OPENAI_CHAT, FakeProviderServer

KEY = "sk-proj-test-0123456789abcdef"

T = TypeVar("T")


class Box(BaseModel, Generic[T]):
    value: T


class Step(BaseModel):
    explanation: str
    output: str


class MathAnswer(BaseModel):
    steps: list[Step]
    final_answer: int
    note: str | None = None


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as fake:
        yield fake


@pytest.fixture
def provider(server: FakeProviderServer) -> Iterator[OpenAIProvider]:
    with OpenAIProvider(api_key=KEY, model="gpt-5.4-mini", base_url=server.openai_base_url) as made:
        yield made


def test_generate_sends_a_chat_completion_and_reads_the_reply(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    server.enqueue(
        OPENAI_CHAT,
        replies.openai_chat("Hola.", prompt_tokens=40, completion_tokens=2, cached_tokens=32),
    )
    response = provider.generate(
        "Say hello in Spanish.",
        system_prompt="You are terse.",
        max_tokens=50,
        temperature=1.5,
        stop_sequences=["END", "STOP"],
    )
    assert isinstance(response, LLMResponse)
    assert response.text == "Hola."
    assert response.provider == "openai"
    assert response.model == replies.FAKE_OPENAI_MODEL
    assert response.finish_reason == "stop"
    assert response.usage.input_tokens == 40
    assert response.usage.cached_input_tokens == 32
    assert response.usage.output_tokens == 2
    assert response.usage.total_tokens == 42
    assert response.latency_ms > 0
    assert response.request_id is not None

    (request,) = server.requests_for(OPENAI_CHAT)
    assert request.path == "/v1/chat/completions"
    assert request.body == {
        "model": "gpt-5.4-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello in Spanish."},
        ],
        "max_completion_tokens": 50,
        "temperature": 1.5,
        "stop": ["END", "STOP"],
    }
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_optional_arguments_are_left_out_when_not_given(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    provider.generate("hi")
    body = server.requests_for(OPENAI_CHAT)[0].body
    assert set(body) == {"model", "messages", "max_completion_tokens"}
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_length_is_max_tokens(server: FakeProviderServer, provider: OpenAIProvider) -> None:
    server.enqueue(OPENAI_CHAT, replies.openai_chat("The answer is", finish_reason="length"))
    response = provider.generate("Count to a million", max_tokens=3)
    assert response.finish_reason == "max_tokens"
    assert response.raw_finish_reason == "length"


def test_content_filter_finish_is_content_filter_error(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    server.enqueue(OPENAI_CHAT, replies.openai_content_filter())
    with pytest.raises(ContentFilterError) as caught:
        provider.generate("something bad")
    assert caught.value.error_type == "content_filter"


def test_a_refusal_is_content_filter_error(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    server.enqueue(OPENAI_CHAT, replies.openai_refusal())
    with pytest.raises(ContentFilterError) as caught:
        provider.generate_structured("something bad", MathAnswer)
    assert caught.value.error_type == "refusal"


def test_a_prompt_blocked_by_the_filter_is_content_filter_error(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    server.enqueue(OPENAI_CHAT, replies.bad_request(OPENAI_CHAT, "blocked", code="content_filter"))
    with pytest.raises(ContentFilterError):
        provider.generate("something bad")


def test_structured_output_sends_a_strict_json_schema(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    answer = {"steps": [{"explanation": "8x = -29", "output": "x = -29/8"}], "final_answer": -3}
    server.enqueue(OPENAI_CHAT, replies.openai_chat(json.dumps({**answer, "note": None})))
    parsed, response = provider.generate_structured("solve 8x + 31 = 2", MathAnswer)
    assert parsed.final_answer == -3
    assert parsed.steps == [Step(explanation="8x = -29", output="x = -29/8")]
    assert json.loads(response.text)["final_answer"] == -3

    response_format = server.requests_for(OPENAI_CHAT)[0].body["response_format"]
    assert response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert spec["name"] == "MathAnswer"
    assert spec["strict"] is True
    # Strict mode: every property required, no extra properties, nested models too.
    assert set(spec["schema"]["required"]) == {"steps", "final_answer", "note"}
    assert spec["schema"]["additionalProperties"] is False


def test_a_reply_that_does_not_validate_is_structured_output_error(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    text = '{"steps": [], "final_answer": "minus three"}'
    server.enqueue(OPENAI_CHAT, replies.openai_chat(text))
    with pytest.raises(StructuredOutputError) as caught:
        provider.generate_structured("solve", MathAnswer)
    assert caught.value.raw_text == text
    assert caught.value.provider == "openai"


def test_a_structured_reply_cut_by_length_is_structured_output_error(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    server.enqueue(OPENAI_CHAT, replies.openai_chat('{"steps": [{"expl', finish_reason="length"))
    with pytest.raises(StructuredOutputError, match="max_tokens") as caught:
        provider.generate_structured("solve", MathAnswer, max_tokens=5)
    assert caught.value.raw_text == '{"steps": [{"expl'


def test_generic_schema_names_are_made_acceptable(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    server.enqueue(OPENAI_CHAT, replies.openai_chat('{"value": 3}'))
    parsed, _ = provider.generate_structured("three", Box[int])
    assert parsed.value == 3
    name = server.requests_for(OPENAI_CHAT)[0].body["response_format"]["json_schema"]["name"]
    assert name == "Box_int_"


def test_sdk_retries_are_off_by_default(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    server.enqueue(OPENAI_CHAT, replies.server_error(OPENAI_CHAT))
    with pytest.raises(TransientProviderError):
        provider.generate("hi")
    assert len(server.requests_for(OPENAI_CHAT)) == 1


def test_more_than_four_stop_sequences_is_invalid(
    server: FakeProviderServer, provider: OpenAIProvider
) -> None:
    with pytest.raises(InvalidRequestError, match="stop_sequences"):
        provider.generate("hi", stop_sequences=["a", "b", "c", "d", "e"])
    assert server.requests == []


def test_the_key_comes_from_the_environment_when_not_given(
    server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-42424242")
    provider = OpenAIProvider(base_url=server.openai_base_url)
    provider.generate("hi")
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env-42424242"


def test_no_key_anywhere_fails_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        OpenAIProvider()


def test_model_id_and_repr(provider: OpenAIProvider, server: FakeProviderServer) -> None:
    assert provider.model_id == "gpt-5.4-mini"
    assert provider.provider_name == "openai"
    assert repr(provider) == (
        f"OpenAIProvider(model='gpt-5.4-mini', base_url='{server.openai_base_url}')"
    )

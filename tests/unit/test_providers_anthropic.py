"""AnthropicProvider against the fake Messages API: requests, responses, structured output."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Field

from providers import AnthropicProvider, LLMResponse
from providers.errors import (
    AuthenticationError,
    ContentFilterError,
    InvalidRequestError,
    StructuredOutputError,
    TransientProviderError,
)
from tests.fakes import replies
from tests.fakes.server import ANTHROPIC, FakeProviderServer

KEY = "sk-ant-test-0123456789abcdef"


class Verdict(BaseModel):
    """A classification of a message."""

    label: str
    score: float = Field(ge=0, le=1)


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as fake:
        yield fake


@pytest.fixture
def provider(server: FakeProviderServer) -> Iterator[AnthropicProvider]:
    with AnthropicProvider(
        api_key=KEY, model="claude-haiku-4-5", base_url=server.anthropic_base_url
    ) as made:
        yield made


def test_generate_sends_a_messages_request_and_reads_the_reply(
    server: FakeProviderServer, provider: AnthropicProvider
) -> None:
    server.enqueue(
        ANTHROPIC,
        replies.anthropic_message(
            "Bonjour.",
            input_tokens=20,
            output_tokens=3,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=50,
        ),
    )
    response = provider.generate(
        "Say hello in French.",
        system_prompt="You are terse.",
        max_tokens=64,
        temperature=0.2,
        stop_sequences=["END"],
    )
    assert isinstance(response, LLMResponse)
    assert response.text == "Bonjour."
    assert response.provider == "anthropic"
    assert response.model == replies.FAKE_ANTHROPIC_MODEL
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "end_turn"
    assert response.usage.input_tokens == 170
    assert response.usage.cached_input_tokens == 100
    assert response.usage.cache_write_tokens == 50
    assert response.usage.output_tokens == 3
    assert response.latency_ms > 0
    assert response.request_id is not None
    assert response.request_id.startswith("req_fake_")
    # Responses travel as JSON (task results) and come back equal.
    assert LLMResponse.model_validate_json(response.model_dump_json()) == response

    (request,) = server.requests_for(ANTHROPIC)
    assert request.path == "/v1/messages"
    assert request.body == {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello in French."}],
        "system": "You are terse.",
        "stop_sequences": ["END"],
    }
    assert KEY in (request.headers.get("x-api-key", "") + request.headers.get("authorization", ""))


def test_temperature_is_not_sent_and_the_drop_is_logged_once(
    server: FakeProviderServer, provider: AnthropicProvider, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="providers"):
        provider.generate("hi", temperature=0.0)
        provider.generate("hi", temperature=0.7)
    assert all("temperature" not in r.body for r in server.requests_for(ANTHROPIC))
    warnings = [r for r in caplog.records if "temperature" in r.getMessage()]
    assert len(warnings) == 1


def test_optional_arguments_are_left_out_when_not_given(
    server: FakeProviderServer, provider: AnthropicProvider
) -> None:
    provider.generate("hi")
    body = server.requests_for(ANTHROPIC)[0].body
    assert set(body) == {"model", "max_tokens", "messages"}
    assert body["max_tokens"] == 1024


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("max_tokens", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("model_context_window_exceeded", "max_tokens"),
        ("pause_turn", "other"),
    ],
)
def test_finish_reasons_are_normalised(
    server: FakeProviderServer, provider: AnthropicProvider, stop_reason: str, finish: str
) -> None:
    server.enqueue(ANTHROPIC, replies.anthropic_message("partial", stop_reason=stop_reason))
    response = provider.generate("go on")
    assert response.finish_reason == finish
    assert response.raw_finish_reason == stop_reason


def test_refusal_is_a_content_filter_error(
    server: FakeProviderServer, provider: AnthropicProvider
) -> None:
    server.enqueue(ANTHROPIC, replies.anthropic_refusal("cyber"))
    with pytest.raises(ContentFilterError, match="refused") as caught:
        provider.generate("something bad")
    assert caught.value.error_type == "refusal"
    assert caught.value.request_id is not None


def test_structured_output_uses_output_config_json_schema(
    server: FakeProviderServer, provider: AnthropicProvider
) -> None:
    server.enqueue(ANTHROPIC, replies.anthropic_message('{"label": "spam", "score": 0.9}'))
    verdict, response = provider.generate_structured("Classify: WIN A PRIZE", Verdict)
    assert verdict == Verdict(label="spam", score=0.9)
    assert json.loads(response.text) == {"label": "spam", "score": 0.9}

    body = server.requests_for(ANTHROPIC)[0].body
    output_format = body["output_config"]["format"]
    assert output_format["type"] == "json_schema"
    assert output_format["schema"]["additionalProperties"] is False
    assert set(output_format["schema"]["properties"]) == {"label", "score"}
    assert "tools" not in body


def test_structured_output_with_forced_tool_use(server: FakeProviderServer) -> None:
    provider = AnthropicProvider(
        api_key=KEY, base_url=server.anthropic_base_url, structured_output="tool"
    )
    server.enqueue(ANTHROPIC, replies.anthropic_tool_use("Verdict", {"label": "ham", "score": 0.1}))
    verdict, response = provider.generate_structured("Classify: lunch at noon?", Verdict)
    assert verdict == Verdict(label="ham", score=0.1)
    assert response.finish_reason == "tool_use"
    assert json.loads(response.text) == {"label": "ham", "score": 0.1}

    body = server.requests_for(ANTHROPIC)[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "Verdict"}
    (tool,) = body["tools"]
    assert tool["name"] == "Verdict"
    assert tool["description"] == "A classification of a message."
    assert set(tool["input_schema"]["properties"]) == {"label", "score"}
    assert "output_config" not in body


@pytest.mark.parametrize(
    "text",
    [
        '{"label": "spam", "score": 7}',
        '{"label": "spam"}',
        "Sure! Here is the JSON you asked for.",
        '{"label": "spam", "sco',
    ],
)
def test_a_reply_that_does_not_validate_is_structured_output_error(
    server: FakeProviderServer, provider: AnthropicProvider, text: str
) -> None:
    server.enqueue(ANTHROPIC, replies.anthropic_message(text))
    with pytest.raises(StructuredOutputError, match="Verdict") as caught:
        provider.generate_structured("Classify", Verdict)
    assert caught.value.raw_text == text


def test_a_cut_reply_says_it_was_cut(
    server: FakeProviderServer, provider: AnthropicProvider
) -> None:
    server.enqueue(ANTHROPIC, replies.anthropic_message('{"label": "sp', stop_reason="max_tokens"))
    with pytest.raises(StructuredOutputError, match="max_tokens"):
        provider.generate_structured("Classify", Verdict, max_tokens=5)


def test_a_tool_mode_reply_without_the_tool_call_is_structured_output_error(
    server: FakeProviderServer,
) -> None:
    provider = AnthropicProvider(
        api_key=KEY, base_url=server.anthropic_base_url, structured_output="tool"
    )
    server.enqueue(ANTHROPIC, replies.anthropic_message("I would rather chat."))
    with pytest.raises(StructuredOutputError) as caught:
        provider.generate_structured("Classify", Verdict)
    assert caught.value.raw_text == "I would rather chat."


def test_sdk_retries_are_off_by_default(
    server: FakeProviderServer, provider: AnthropicProvider
) -> None:
    server.enqueue(ANTHROPIC, replies.server_error(ANTHROPIC))
    with pytest.raises(TransientProviderError):
        provider.generate("hi")
    assert len(server.requests_for(ANTHROPIC)) == 1


def test_max_retries_is_handed_to_the_sdk(server: FakeProviderServer) -> None:
    provider = AnthropicProvider(api_key=KEY, base_url=server.anthropic_base_url, max_retries=1)
    failing = replies.server_error(ANTHROPIC)
    failing.headers["retry-after-ms"] = "1"
    server.enqueue(ANTHROPIC, failing)
    assert provider.generate("hi").text == "echo: hi"
    assert len(server.requests_for(ANTHROPIC)) == 2


def test_the_key_comes_from_the_environment_when_not_given(
    server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-42424242")
    provider = AnthropicProvider(base_url=server.anthropic_base_url)
    provider.generate("hi")
    headers = server.requests_for(ANTHROPIC)[0].headers
    assert "sk-ant-from-env-42424242" in json.dumps(headers)


def test_no_key_anywhere_fails_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": ""}, "model"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"structured_output": "xml"}, "structured_output"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        AnthropicProvider(api_key=KEY, **kwargs)  # type: ignore[arg-type]


def test_model_id_and_repr(provider: AnthropicProvider, server: FakeProviderServer) -> None:
    assert provider.model_id == "claude-haiku-4-5"
    assert provider.provider_name == "anthropic"
    assert repr(provider) == (
        f"AnthropicProvider(model='claude-haiku-4-5', base_url='{server.anthropic_base_url}')"
    )

"""Every provider against every scripted fault: the error mapping table, bad input, key hygiene.

Each behaviour is written once and run for the Anthropic, OpenAI chat and OpenAI embedding
providers.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import BaseModel

from providers import AnthropicProvider, OpenAIEmbeddingProvider, OpenAIProvider
from providers.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelError,
    ProviderError,
    RateLimitError,
    TransientProviderError,
)
from tests.fakes import replies
from tests.fakes.server import (
    ANTHROPIC,
    OPENAI_CHAT,
    OPENAI_EMBEDDINGS,
    FakeProviderServer,
    Reply,
)

KEY = "sk-test-TOPSECRET-0123456789abcdef"


class Answer(BaseModel):
    value: int


class Unschemable(BaseModel):
    callback: Callable[[], int]


@dataclass
class Kind:
    """How to build and call one provider against the fake server."""

    api: str
    build: Callable[..., Any]
    call: Callable[[Any], object]


KINDS = {
    "anthropic": Kind(
        ANTHROPIC,
        lambda server, **kw: AnthropicProvider(
            api_key=KEY, base_url=server.anthropic_base_url, **kw
        ),
        lambda provider: provider.generate("hello"),
    ),
    "openai-chat": Kind(
        OPENAI_CHAT,
        lambda server, **kw: OpenAIProvider(api_key=KEY, base_url=server.openai_base_url, **kw),
        lambda provider: provider.generate("hello"),
    ),
    "openai-embeddings": Kind(
        OPENAI_EMBEDDINGS,
        lambda server, **kw: OpenAIEmbeddingProvider(
            api_key=KEY, base_url=server.openai_base_url, **kw
        ),
        lambda provider: provider.embed_batch(["hello", "world"]),
    ),
}


DEFAULT_HANDLERS = {
    ANTHROPIC: replies.default_anthropic,
    OPENAI_CHAT: replies.default_openai_chat,
    OPENAI_EMBEDDINGS: replies.default_openai_embeddings,
}


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as fake:
        yield fake


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return KINDS[request.param]


def http_date_in(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


FAULTS: dict[str, tuple[Callable[[str], Reply], type[ProviderError], int | None]] = {
    "401": (lambda api: replies.unauthorized(api), AuthenticationError, 401),
    "403": (lambda api: replies.api_error(api, 403, "forbidden"), AuthenticationError, 403),
    "404": (lambda api: replies.model_not_found(api), ModelError, 404),
    "400": (lambda api: replies.bad_request(api), InvalidRequestError, 400),
    "413": (lambda api: replies.api_error(api, 413, "too large"), InvalidRequestError, 413),
    "422": (lambda api: replies.api_error(api, 422, "unprocessable"), InvalidRequestError, 422),
    "429": (lambda api: replies.rate_limited(api), RateLimitError, 429),
    "408": (
        lambda api: replies.api_error(api, 408, "request timeout"),
        TransientProviderError,
        408,
    ),
    "409": (lambda api: replies.api_error(api, 409, "conflict"), TransientProviderError, 409),
    "500": (lambda api: replies.server_error(api), TransientProviderError, 500),
    "503": (lambda api: replies.api_error(api, 503, "unavailable"), TransientProviderError, 503),
    "529": (lambda api: replies.overloaded(api), TransientProviderError, 529),
    "malformed": (lambda api: replies.malformed(), TransientProviderError, None),
    "not-json": (
        lambda api: Reply(200, b"<html>gateway</html>", content_type="text/html"),
        TransientProviderError,
        None,
    ),
    "error-with-html-body": (
        lambda api: Reply(502, b"<html>bad gateway</html>", content_type="text/html"),
        TransientProviderError,
        502,
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_maps_to_its_error(server: FakeProviderServer, kind: Kind, fault: str) -> None:
    make_reply, expected, status = FAULTS[fault]
    server.enqueue(kind.api, make_reply(kind.api))
    provider = kind.build(server)
    with pytest.raises(expected) as caught:
        kind.call(provider)
    assert type(caught.value) is expected
    assert caught.value.status_code == status
    assert caught.value.provider in ("anthropic", "openai")
    if status is not None:
        assert caught.value.request_id is not None
        assert caught.value.request_id.startswith("req_fake_")
    assert len(server.requests_for(kind.api)) == 1


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry_after": "7"}, 7.0),
        ({"retry_after": None, "retry_after_ms": "250"}, 0.25),
        ({"retry_after": None}, None),
    ],
)
def test_rate_limit_carries_the_servers_wait(
    server: FakeProviderServer, kind: Kind, headers: dict[str, Any], expected: float | None
) -> None:
    server.enqueue(kind.api, replies.rate_limited(kind.api, **headers))
    with pytest.raises(RateLimitError) as caught:
        kind.call(kind.build(server))
    assert caught.value.retry_after == expected


def test_rate_limit_reads_an_http_date(server: FakeProviderServer, kind: Kind) -> None:
    server.enqueue(kind.api, replies.rate_limited(kind.api, retry_after=http_date_in(30)))
    with pytest.raises(RateLimitError) as caught:
        kind.call(kind.build(server))
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 30


def test_connection_refused_is_transient(kind: Kind) -> None:
    with FakeProviderServer() as stopped:
        pass
    provider = kind.build(stopped)
    with pytest.raises(TransientProviderError, match="could not connect") as caught:
        kind.call(provider)
    assert caught.value.error_type == "connection"


def test_a_slow_reply_past_the_timeout_is_transient(server: FakeProviderServer, kind: Kind) -> None:
    normal = DEFAULT_HANDLERS[kind.api]
    server.set_default(kind.api, lambda request: replies.slow(normal(request), 3.0))
    provider = kind.build(server, timeout=0.2)
    with pytest.raises(TransientProviderError, match="timed out") as caught:
        kind.call(provider)
    assert caught.value.error_type == "timeout"


def test_the_key_never_shows_in_errors_reprs_or_logs(
    server: FakeProviderServer, kind: Kind, caplog: pytest.LogCaptureFixture
) -> None:
    # Some APIs quote the key they reject; the error must not pass it on.
    server.enqueue(kind.api, replies.unauthorized(kind.api, f"Incorrect API key provided: {KEY}"))
    server.enqueue(kind.api, replies.server_error(kind.api))
    with caplog.at_level(logging.DEBUG):
        provider = kind.build(server)
        errors = []
        for _ in range(2):
            with pytest.raises(ProviderError) as caught:
                kind.call(provider)
            errors.append(caught.value)
        kind.call(provider)
    assert isinstance(errors[0], AuthenticationError)
    assert KEY in server.requests[0].headers["authorization"]
    for error in errors:
        shown = [str(error), repr(error), str(pickle.dumps(error)), str(vars(error))]
        assert not any(KEY in text for text in shown)
        assert "TOPSECRET" not in str(error)
        # The SDK's exception holds the request and its headers: it must not ride along.
        assert error.__cause__ is None
        assert error.__context__ is None
    assert KEY not in repr(provider)
    assert KEY not in str(provider)
    assert caplog.records, "debug logging was captured"
    assert not any(KEY in record.getMessage() for record in caplog.records)
    assert not any(KEY in str(record.__dict__) for record in caplog.records)


@pytest.mark.parametrize("name", ["anthropic", "openai-chat"])
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: p.generate(""), "prompt is empty"),
        (lambda p: p.generate("  \n\t"), "prompt is empty"),
        (lambda p: p.generate(None), "prompt must be a string"),
        (lambda p: p.generate("hi", max_tokens=0), "max_tokens"),
        (lambda p: p.generate("hi", max_tokens=True), "max_tokens"),
        (lambda p: p.generate("hi", temperature=-0.1), "temperature"),
        (lambda p: p.generate("hi", temperature=float("nan")), "temperature"),
        (lambda p: p.generate("hi", temperature=3.0), "temperature"),
        (lambda p: p.generate("hi", stop_sequences="STOP"), "stop_sequences"),
        (lambda p: p.generate("hi", stop_sequences=[""]), "stop_sequences"),
        (lambda p: p.generate("hi", system_prompt=5), "system_prompt"),
        (lambda p: p.generate("x" * 100), "too long"),
        (lambda p: p.generate("hi", system_prompt="x" * 100), "too long"),
        (lambda p: p.generate_structured("hi", {"type": "object"}), "pydantic"),
        (lambda p: p.generate_structured("hi", Answer(value=1)), "pydantic"),
        (lambda p: p.generate_structured("hi", dict), "pydantic"),
        (lambda p: p.generate_structured("hi", Unschemable), "cannot be used"),
        (lambda p: p.generate_structured("", Answer), "prompt is empty"),
    ],
)
def test_bad_input_fails_before_any_call(
    server: FakeProviderServer, name: str, call: Callable[[Any], object], match: str
) -> None:
    provider = KINDS[name].build(server, max_input_tokens=10)
    with pytest.raises(InvalidRequestError, match=match):
        call(provider)
    assert server.requests == []


@pytest.mark.parametrize("name", ["anthropic", "openai-chat"])
def test_a_prompt_within_the_limit_goes_out(server: FakeProviderServer, name: str) -> None:
    provider = KINDS[name].build(server, max_input_tokens=10)
    provider.generate("x" * 80)
    assert len(server.requests) == 1

"""The provider error tree, the status-code table, Retry-After parsing and redaction."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from providers.errors import (
    AuthenticationError,
    ContentFilterError,
    InvalidRequestError,
    ModelError,
    ProviderError,
    RateLimitError,
    StructuredOutputError,
    TransientProviderError,
)
from providers.translate import describe_body, error_for_status, parse_retry_after, redact

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, ModelError),
        (408, TransientProviderError),
        (409, TransientProviderError),
        (413, InvalidRequestError),
        (422, InvalidRequestError),
        (429, RateLimitError),
        (500, TransientProviderError),
        (502, TransientProviderError),
        (503, TransientProviderError),
        (504, TransientProviderError),
        (529, TransientProviderError),
    ],
)
def test_status_table(status: int, expected: type[ProviderError]) -> None:
    error = error_for_status(
        status,
        provider="anthropic",
        body={"type": "error", "error": {"type": "some_error", "message": "went wrong"}},
        headers={},
        request_id="req_1",
        now=NOW,
    )
    assert type(error) is expected
    assert error.status_code == status
    assert error.request_id == "req_1"
    assert error.error_type == "some_error"
    assert error.provider == "anthropic"
    assert f"HTTP {status}" in str(error)
    assert "went wrong" in str(error)


def test_an_unlisted_4xx_is_a_plain_provider_error() -> None:
    error = error_for_status(
        402, provider="openai", body=None, headers={}, request_id=None, now=NOW
    )
    assert type(error) is ProviderError


@pytest.mark.parametrize("code", ["content_filter", "content_policy_violation"])
def test_a_400_naming_a_content_filter_is_content_filter(code: str) -> None:
    body = {"message": "blocked", "type": "invalid_request_error", "code": code}
    error = error_for_status(
        400, provider="openai", body=body, headers={}, request_id=None, now=NOW
    )
    assert isinstance(error, ContentFilterError)


def test_invalid_request_is_also_a_value_error() -> None:
    assert issubclass(InvalidRequestError, ValueError)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": format_datetime(datetime(2030, 1, 1, 12, 0, 42, tzinfo=UTC), True)}, 42.0),
        ({"retry-after": format_datetime(datetime(2029, 1, 1, tzinfo=UTC), True)}, 0.0),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, NOW) == expected


def test_rate_limit_error_carries_retry_after_from_headers() -> None:
    error = error_for_status(
        429,
        provider="openai",
        body={"message": "slow down", "type": "rate_limit_exceeded"},
        headers={"retry-after": "17"},
        request_id=None,
        now=NOW,
    )
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 17.0


def test_describe_body_reads_both_vendor_shapes() -> None:
    anthropic_body = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert describe_body(anthropic_body) == ("overloaded_error", "busy", None)
    openai_inner = {"message": "bad", "type": "invalid_request_error", "code": "x", "param": None}
    assert describe_body(openai_inner) == ("invalid_request_error", "bad", "x")
    assert describe_body({"error": openai_inner}) == ("invalid_request_error", "bad", "x")
    assert describe_body("plain text") == (None, "plain text", None)
    assert describe_body(None) == (None, None, None)


def test_redact_removes_given_secrets_and_key_shapes() -> None:
    text = (
        "key my-custom-secret-value rejected; Incorrect API key provided: sk-proj-abc****wxyz; "
        "header Authorization: Bearer tok_123456 and x-api-key: sk-ant-api03-zzz"
    )
    out = redact(text, ["my-custom-secret-value"])
    for leaked in ("my-custom-secret-value", "sk-proj-abc", "wxyz", "tok_123456", "sk-ant-api03"):
        assert leaked not in out
    assert "[redacted]" in out


def test_long_vendor_messages_are_cut() -> None:
    error = error_for_status(
        400,
        provider="openai",
        body={"message": "x" * 10_000},
        headers={},
        request_id=None,
        now=NOW,
    )
    assert len(str(error)) < 700


@pytest.mark.parametrize(
    "error",
    [
        ProviderError("plain", provider="openai", status_code=418, request_id="r", error_type="t"),
        RateLimitError("slow", retry_after=2.5, provider="anthropic", status_code=429),
        StructuredOutputError("bad json", raw_text='{"a": ', provider="openai"),
        InvalidRequestError("empty prompt"),
        TransientProviderError("timeout", error_type="timeout"),
    ],
)
def test_errors_survive_pickling(error: ProviderError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_to_dict_is_json_ready_and_names_the_type() -> None:
    error = RateLimitError("slow", retry_after=2.5, provider="anthropic", status_code=429)
    data = error.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "type": "RateLimitError",
        "message": "slow",
        "provider": "anthropic",
        "status_code": 429,
        "request_id": None,
        "error_type": None,
        "retry_after": 2.5,
    }
    assert StructuredOutputError("bad", raw_text="{").to_dict()["raw_text"] == "{"

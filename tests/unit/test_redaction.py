"""Redaction: the credential shapes, registered keys, exceptions, errors and log records."""

from __future__ import annotations

import logging
import pickle

import pytest

from providers.errors import ProviderError, RateLimitError, StructuredOutputError
from providers.redaction import (
    REDACTED,
    redact,
    redact_exception,
    redact_value,
    register_secret,
)
from providers.translate import MAX_MESSAGE_LENGTH, error_for_status
from workers import redaction as worker_redaction

REGISTERED = "hearth-unit-registered-credential-0x5f"


@pytest.mark.parametrize(
    "secret",
    [
        "sk-ant-api03-AbCdEf012345-xyz",
        "sk-proj-AbCdEf0123456789",
        "sk-AbCdEf0123456789",
        "sk-proj-abc****wxyz",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
    ],
)
def test_key_shapes_are_replaced_whole(secret: str) -> None:
    out = redact(f"the key {secret} was rejected")
    assert out == f"the key {REDACTED} was rejected"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer tok_123456", f"Authorization: Bearer {REDACTED}"),
        ("authorization=Basic dXNlcjpwYXNz", f"authorization=Basic {REDACTED}"),
        ("header x-api-key: abc", f"header x-api-key: {REDACTED}"),
        ("sent bearer abcdefghijklmnopqrstuvwxyz", f"sent bearer {REDACTED}"),
        ("api_key=AbCdEf0123456789xyz&x=1", f"api_key={REDACTED}&x=1"),
        ('{"client_secret": "c2VjcmV0LXZhbHVlLWhlcmU="}', f'{{"client_secret": "{REDACTED}"}}'),
        ("access_token: 0123456789abcdef0123", f"access_token: {REDACTED}"),
    ],
)
def test_credentials_in_header_and_key_value_forms_are_replaced(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a task-force of desk-lamps asked for a risk-assessment",
        "the bearer of bad news carries bearer certificates",
        "key=value, token: short, monkey see, password: hunter2",
        "session 3 demoted after 1800 s; cache_key=hearth:w:lock:demote",
        "HTTP 429 (rate_limit_error): rate limited; retry-after 2",
        "the model said: sk- is a prefix, and sk-ab is short",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_registered_and_given_secrets_are_replaced_anywhere() -> None:
    register_secret(REGISTERED)
    register_secret("short")
    out = redact(f"x{REGISTERED}y and one-off-given-secret, short", ["one-off-given-secret"])
    assert out == f"x{REDACTED}y and {REDACTED}, short"


def test_redact_value_walks_containers() -> None:
    value = {"a": ["sk-proj-AbCdEf0123456789", ("ok", 1)], "sk-ant-api03-zzzzzz": None}
    assert redact_value(value) == {"a": [REDACTED, ("ok", 1)], REDACTED: None}


def test_redact_exception_copies_only_what_needs_it() -> None:
    plain = ValueError("nothing to hide")
    assert redact_exception(plain) is plain

    try:
        try:
            raise KeyError("sk-proj-AbCdEf0123456789")
        except KeyError as inner:
            raise RuntimeError("lookup failed", "Bearer tok_123456789") from inner
    except RuntimeError as caught:
        original = caught
    clean = redact_exception(original)

    assert type(clean) is RuntimeError
    assert clean.args == ("lookup failed", f"Bearer {REDACTED}")
    assert isinstance(clean.__cause__, KeyError)
    assert clean.__cause__.args == (REDACTED,)
    assert clean.__traceback__ is original.__traceback__
    # The original is untouched: the code that raised it may still hold it.
    assert original.args[1] == "Bearer tok_123456789"


def test_every_string_a_provider_error_carries_is_redacted_and_stays_so() -> None:
    key = "sk-ant-api03-echoed-key-0123"
    error = StructuredOutputError(
        f"bad reply {key}",
        raw_text=f"the model wrote {key}",
        request_id=key,
        error_type=key,
        provider="anthropic",
    )
    rebuilt = pickle.loads(pickle.dumps(error))
    for shown in (error, rebuilt):
        assert key not in str(shown)
        assert key not in repr(shown)
        assert key not in str(shown.to_dict())
        assert key not in str(vars(shown))


def test_error_for_status_redacts_type_request_id_and_message_before_cutting() -> None:
    key = "proxy-credential-given-to-the-call"
    body = {
        "type": "error",
        "error": {"type": f"bad_{key}", "message": "x" * (MAX_MESSAGE_LENGTH - 10) + key},
    }
    error = error_for_status(
        429,
        provider="anthropic",
        body=body,
        headers={"retry-after": "1"},
        request_id=f"req_{key}",
        now=0.0,
        secrets=[key],
    )
    assert isinstance(error, RateLimitError)
    everything = f"{error} {error.to_dict()}"
    # Redacted before the cut, so not even a prefix of the key is left at the end.
    assert key[:8] not in everything
    assert error.error_type == f"bad_{REDACTED}"
    assert error.request_id == f"req_{REDACTED}"


def test_log_records_are_redacted_message_args_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker_redaction.install_log_redaction()
    worker_redaction.install_log_redaction()
    logger = logging.getLogger("hearth.test.redaction")
    with caplog.at_level(logging.INFO, logger="hearth.test.redaction"):
        logger.info("calling with %s", "Bearer tok_abcdef123456")
        logger.info("nothing secret in %d", 42)
        try:
            raise ProviderError("plain message", request_id="ok")
        except ProviderError:
            try:
                raise RuntimeError("sk-proj-AbCdEf0123456789") from None
            except RuntimeError:
                logger.exception("failed")
    first, second, third = caplog.records
    assert first.getMessage() == f"calling with Bearer {REDACTED}"
    assert second.getMessage() == "nothing secret in 42"
    assert second.args == (42,)
    assert "sk-proj" not in caplog.text
    assert REDACTED in (third.exc_text or "")
    assert third.exc_info is not None
    assert "sk-proj" not in str(third.exc_info[1])

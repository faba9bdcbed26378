"""Turning a vendor's HTTP failure into a :mod:`providers.errors` error.

Shared by every provider: the status-code table and ``Retry-After`` parsing. Messages are
redacted (:mod:`providers.redaction`) before they are cut, so that a key straddling the cut
cannot leave a fragment behind.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import Any, TypeVar

from providers.errors import (
    AuthenticationError,
    ContentFilterError,
    InvalidRequestError,
    ModelError,
    ProviderError,
    RateLimitError,
    TransientProviderError,
)
from providers.redaction import redact

MAX_MESSAGE_LENGTH = 500
"""Vendor messages are cut to this many characters: they can quote the whole request."""

MAX_FIELD_LENGTH = 200
"""A vendor's error type and request id are cut to this many characters."""

T = TypeVar("T")

_CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """The wait, in seconds, a 429/503 reply asks for; ``None`` when it names none.

    Reads ``retry-after-ms`` (milliseconds), then ``retry-after`` as seconds or as an HTTP
    date (relative to ``now``, a Unix timestamp). Negative waits become 0.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = _finite_float(lowered.get("retry-after-ms"))
    if millis is not None:
        return max(millis / 1000.0, 0.0)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _finite_float(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - now, 0.0)


def _finite_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def describe_body(body: object) -> tuple[str | None, str | None, str | None]:
    """``(error type, message, code)`` from an error body in either vendor's shape.

    Anthropic sends ``{"type": "error", "error": {"type", "message"}}``; OpenAI
    ``{"error": {"message", "type", "code", "param"}}`` (its SDK hands over the inner dict).
    """
    if not isinstance(body, Mapping):
        text = body if isinstance(body, str) and body else None
        return None, text, None
    inner: Mapping[str, Any] = body
    nested = body.get("error")
    if isinstance(nested, Mapping):
        inner = nested
    error_type = inner.get("type")
    message = inner.get("message")
    code = inner.get("code")
    details = inner.get("details")
    if code is None and isinstance(details, Mapping):
        code = details.get("error_code")
    return (
        error_type if isinstance(error_type, str) else None,
        message if isinstance(message, str) else None,
        str(code) if code is not None else None,
    )


def error_for_status(
    status: int,
    *,
    provider: str,
    body: object,
    headers: Mapping[str, str],
    request_id: str | None,
    now: float,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """The error for an HTTP failure ``status`` with this ``body`` and these ``headers``."""
    error_type, api_message, code = describe_body(body)
    secrets = tuple(secrets)
    detail = redact(api_message or "no detail given", secrets)[:MAX_MESSAGE_LENGTH]
    shown_type = redact(error_type, secrets)[:MAX_FIELD_LENGTH] if error_type else None
    label = f" ({shown_type})" if shown_type else ""
    message = f"{provider} returned HTTP {status}{label}: {detail}"
    fields: dict[str, Any] = {
        "provider": provider,
        "status_code": status,
        "request_id": redact(request_id, secrets)[:MAX_FIELD_LENGTH] if request_id else None,
        "error_type": shown_type,
    }
    if status == 429:
        return RateLimitError(message, retry_after=parse_retry_after(headers, now), **fields)
    cls = _class_for_status(status, error_type, code)
    return cls(message, **fields)


def _class_for_status(status: int, error_type: str | None, code: str | None) -> type[ProviderError]:
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return ModelError
    if status in (408, 409) or status >= 500:
        return TransientProviderError
    if status in (400, 413, 422):
        if code in _CONTENT_FILTER_CODES or error_type in _CONTENT_FILTER_CODES:
            return ContentFilterError
        return InvalidRequestError
    return ProviderError


def connection_error(provider: str, *, timed_out: bool, detail: str = "") -> ProviderError:
    """The error for a request that got no HTTP reply (timeout or connection failure)."""
    what = "timed out" if timed_out else "could not connect"
    suffix = f": {redact(detail)[:MAX_MESSAGE_LENGTH]}" if detail else ""
    return TransientProviderError(
        f"{provider} request {what}{suffix}",
        provider=provider,
        error_type="timeout" if timed_out else "connection",
    )


def unreadable_reply(provider: str, detail: str, *, request_id: str | None = None) -> ProviderError:
    """The error for a 2xx reply whose body cannot be read (a proxy glitch, a cut body)."""
    return TransientProviderError(
        f"{provider} sent an unreadable reply: {redact(detail)[:MAX_MESSAGE_LENGTH]}",
        provider=provider,
        request_id=request_id,
        error_type="unreadable_reply",
    )


def missing_key(provider: str, env_var: str) -> AuthenticationError:
    """The error for a provider built with no API key anywhere."""
    return AuthenticationError(
        f"no {provider} API key: pass api_key or set {env_var}",
        provider=provider,
        error_type="missing_api_key",
    )


def call_sdk(
    fn: Callable[[], T], *, provider: str, sdk: ModuleType, secrets: Iterable[str | None] = ()
) -> tuple[T, float]:
    """Run one SDK call; return its result and latency in ms, or raise a provider error.

    ``sdk`` is the vendor's SDK module (``anthropic`` or ``openai``: both name their
    exceptions alike). The provider error is raised outside the ``except`` block so that the
    SDK exception, which holds the request and its key, is not even its ``__context__``.
    """
    started = time.perf_counter()
    error: ProviderError | None = None
    try:
        result = fn()
    except (sdk.APIError, json.JSONDecodeError) as exc:
        error = translate_sdk_error(exc, provider=provider, sdk=sdk, secrets=tuple(secrets))
    if error is not None:
        raise error
    return result, (time.perf_counter() - started) * 1000.0


def translate_sdk_error(
    exc: Exception, *, provider: str, sdk: ModuleType, secrets: Iterable[str | None] = ()
) -> ProviderError:
    """The provider error for an exception raised by ``sdk``."""
    if isinstance(exc, sdk.APIStatusError):
        return error_for_status(
            exc.status_code,
            provider=provider,
            body=exc.body,
            headers=exc.response.headers,
            request_id=exc.request_id,
            now=time.time(),
            secrets=secrets,
        )
    if isinstance(exc, sdk.APITimeoutError):
        return connection_error(provider, timed_out=True)
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f"{type(cause).__name__}: {redact(str(cause), secrets)}" if cause else ""
        return connection_error(provider, timed_out=False, detail=detail)
    if isinstance(exc, (sdk.APIResponseValidationError, json.JSONDecodeError)):
        return unreadable_reply(provider, type(exc).__name__)
    message = redact(f"{provider} call failed: {type(exc).__name__}: {exc}", secrets)
    return ProviderError(message[:MAX_MESSAGE_LENGTH], provider=provider)

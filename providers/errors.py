"""The errors every provider raises.

Callers of hearth catch these, never an SDK's own exceptions. Each provider translates the
SDK's errors at its edge:

=====================================  ===========================
what happened                          error
=====================================  ===========================
HTTP 401, 403, no API key              AuthenticationError
HTTP 404 (unknown model)               ModelError
HTTP 429                               RateLimitError (retry_after)
HTTP 408, 409, 5xx, 529, timeout,      TransientProviderError
connection failure, unreadable reply
HTTP 400, 413, 422, bad arguments      InvalidRequestError
refusal, content filter                ContentFilterError
reply not matching the schema          StructuredOutputError (raw_text)
=====================================  ===========================

The SDK exception is deliberately not kept as ``__cause__``: it holds the HTTP request (whose
headers carry the API key) and its message can quote the key. The useful parts — status code,
request id, the vendor's error type and the message — are copied onto the error, and every
string an error carries is redacted as it is built (:mod:`providers.redaction`): the
configured keys and anything shaped like a credential never reach ``str(error)``,
``to_dict()``, a pickle or a traceback. Every error pickles, so it can cross a process
boundary.
"""

from __future__ import annotations

from typing import Any

from providers.redaction import redact, redact_optional


class ProviderError(Exception):
    """A call to an AI provider failed."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        error_type: str | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.request_id = redact_optional(request_id)
        self.error_type = redact_optional(error_type)

    def _fields(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "status_code": self.status_code,
            "request_id": self.request_id,
            "error_type": self.error_type,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: ``type`` (the class name), ``message`` and the fields."""
        return {"type": type(self).__name__, "message": self.message, **self._fields()}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self._fields()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"


class AuthenticationError(ProviderError):
    """The API key is missing, wrong or not allowed to do this (HTTP 401/403)."""


class ModelError(ProviderError):
    """The model does not exist or this key cannot use it (HTTP 404)."""


class RateLimitError(ProviderError):
    """The provider asked us to slow down (HTTP 429); ``retry_after`` is its wait, if given."""

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "retry_after": self.retry_after}


class TransientProviderError(ProviderError):
    """A failure that may pass: timeout, connection loss, overload, server error."""


class InvalidRequestError(ProviderError, ValueError):
    """The request is malformed or too large; sending it again will not help."""


class ContentFilterError(ProviderError):
    """The model refused, or a content filter blocked the prompt or the reply."""


class StructuredOutputError(ProviderError):
    """The reply did not match the requested schema; ``raw_text`` is what the model sent."""

    def __init__(self, message: str, *, raw_text: str = "", **fields: Any) -> None:
        super().__init__(message, **fields)
        self.raw_text = redact(raw_text)

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "raw_text": self.raw_text}


def _rebuild(cls: type[ProviderError], message: str, fields: dict[str, Any]) -> ProviderError:
    return cls(message, **fields)


__all__ = [
    "AuthenticationError",
    "ContentFilterError",
    "InvalidRequestError",
    "ModelError",
    "ProviderError",
    "RateLimitError",
    "StructuredOutputError",
    "TransientProviderError",
]

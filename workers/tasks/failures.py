"""The exception a failed provider task ends with: FAILURE, typed, JSON all the way.

Celery's JSON result backend stores an exception as its class (``exc_module``,
``exc_type``) and its ``args`` (``exc_message``), and rebuilds it on the client as
``cls(*args)``. :class:`ProviderTaskError` keeps every field in its ``args`` in that order,
so ``AsyncResult.result`` gives it back whole, fields and all, on any process that imported
this module (``workers.app`` does); chains, chords, errbacks and Flower see a FAILURE.

Its ``str()`` and ``repr()`` name the error type and message only: the worker log and the
``task-failed`` event show those, never a structured reply's ``raw_text``.
"""

from __future__ import annotations

from typing import Any

from providers.errors import ProviderError
from workers.backoff import NEVER_RETRY, RETRYABLE_ERRORS, is_retryable
from workers.provider_registry import ProviderSettingsError

# The classes a stored error's ``type`` may name: workers.backoff sorts every provider
# error into retried or never retried, so its two lists hold them all.
_KNOWN: tuple[type[ProviderError], ...] = (
    ProviderError,
    *RETRYABLE_ERRORS,
    *NEVER_RETRY,
    ProviderSettingsError,
)
_ERROR_TYPES: dict[str, type[ProviderError]] = {cls.__name__: cls for cls in _KNOWN}


class ProviderTaskError(Exception):
    """A provider task failed; its fields say how (see the attributes).

    Attributes:
        message: the provider error's message.
        error: :meth:`ProviderError.to_dict` of the error: ``type`` (its class name, e.g.
            ``"AuthenticationError"``), ``message``, ``provider``, ``status_code``,
            ``request_id``, ``error_type``, and ``retry_after`` / ``raw_text`` where the
            error has them.
        retryable: whether the error was of a kind that is retried.
        attempts: attempts made, the failed one included.
        elapsed_seconds: seconds from the first attempt's start to the failure.
        gave_up: ``None`` (not retried), ``"max_attempts"`` or ``"deadline"``.
    """

    def __init__(
        self,
        message: str,
        error: dict[str, Any] | None = None,
        retryable: bool = False,
        attempts: int = 1,
        elapsed_seconds: float = 0.0,
        gave_up: str | None = None,
    ) -> None:
        error = dict(error or {})
        super().__init__(message, error, retryable, attempts, elapsed_seconds, gave_up)
        self.message = message
        self.error = error
        self.retryable = retryable
        self.attempts = attempts
        self.elapsed_seconds = elapsed_seconds
        self.gave_up = gave_up

    @classmethod
    def from_error(
        cls, error: ProviderError, *, attempts: int, elapsed: float, gave_up: str | None
    ) -> ProviderTaskError:
        """The task failure ``error`` caused, after ``attempts`` attempts and ``elapsed`` s."""
        return cls(
            error.message,
            error.to_dict(),
            is_retryable(error),
            attempts,
            round(elapsed, 3),
            gave_up,
        )

    @property
    def error_type(self) -> str:
        """The provider error's class name, e.g. ``"RateLimitError"``."""
        return str(self.error.get("type") or "ProviderError")

    def provider_error(self) -> ProviderError:
        """The :class:`ProviderError` this failure describes, rebuilt with its fields."""
        data = dict(self.error)
        cls = _ERROR_TYPES.get(str(data.pop("type", "")), ProviderError)
        message = str(data.pop("message", self.message))
        try:
            return cls(message, **data)
        except TypeError:
            return cls(message)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return {
            "error": dict(self.error),
            "retryable": self.retryable,
            "attempts": self.attempts,
            "elapsed_seconds": self.elapsed_seconds,
            "gave_up": self.gave_up,
        }

    def __str__(self) -> str:
        given_up = f", gave up: {self.gave_up}" if self.gave_up else ""
        return f"{self.error_type}: {self.message} (attempts: {self.attempts}{given_up})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

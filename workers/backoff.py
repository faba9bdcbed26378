"""When to retry a failed provider call, and after how long: a pure function.

Only :data:`RETRYABLE_ERRORS` are retried; every other error (:data:`NEVER_RETRY` and
anything unexpected) fails at once, because sending the same request again cannot help.

The countdown before retry ``n`` (``n`` attempts made so far) is

1. *exponential with full jitter*: uniform in ``[0, min(max_delay, base * factor**(n-1)))``,
   which spreads the retries of many workers hit by one outage;
2. *at least the server's* ``retry_after``, when a 429 named one;
3. *capped below the broker's visibility timeout*: with the Redis broker a task whose
   countdown exceeds it is delivered again and again (celery#5935), so the cap wins over
   ``retry_after``;
4. *within the total deadline*: never past ``deadline`` seconds after the first attempt,
   and no retry at all when the server's own wait would end past it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

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

RETRYABLE_ERRORS: tuple[type[ProviderError], ...] = (RateLimitError, TransientProviderError)
"""The errors worth another attempt: rate limits, timeouts, overload, server errors."""

NEVER_RETRY: tuple[type[ProviderError], ...] = (
    AuthenticationError,
    ModelError,
    InvalidRequestError,
    ContentFilterError,
    StructuredOutputError,
)
"""Provider errors that fail at once: the same request would fail the same way."""


@dataclass(frozen=True)
class BackoffPolicy:
    """The knobs of :func:`compute_backoff`; all times in seconds.

    Attributes:
        base: the jitter ceiling of the first retry.
        factor: how much the ceiling grows per attempt.
        max_delay: the largest ceiling, before ``retry_after`` and the caps.
        max_attempts: attempts in all, the first one included.
        deadline: no attempt starts later than this after the first one.
        visibility_timeout: the broker's; every countdown stays below it by
            :attr:`visibility_margin`.
    """

    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0
    max_attempts: int = 6
    deadline: float = 600.0
    visibility_timeout: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("base", "max_delay", "deadline", "visibility_timeout"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
        if not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError(f"factor must be >= 1; got {self.factor!r}")
        if isinstance(self.max_attempts, bool) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1; got {self.max_attempts!r}")

    @property
    def visibility_margin(self) -> float:
        """How far below the visibility timeout a countdown must end (5 %, at least 1 s)."""
        return max(1.0, 0.05 * self.visibility_timeout)

    @property
    def max_countdown(self) -> float:
        """The longest countdown allowed."""
        return max(self.visibility_timeout - self.visibility_margin, 0.0)


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is worth another attempt."""
    return isinstance(error, RETRYABLE_ERRORS)


def compute_backoff(
    attempts: int,
    *,
    elapsed: float,
    policy: BackoffPolicy,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float | None:
    """The countdown before the next attempt, or ``None`` when it is time to give up.

    Args:
        attempts: attempts made so far (1 after the first failure).
        elapsed: seconds since the first attempt started.
        policy: the limits.
        retry_after: the server's requested wait, if any (a floor).
        rng: returns a float in ``[0, 1)``; injected so tests are exact.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1; got {attempts!r}")
    if attempts >= policy.max_attempts:
        return None
    remaining = policy.deadline - max(elapsed, 0.0)
    if remaining <= 0:
        return None
    floor = max(retry_after or 0.0, 0.0)
    if floor > remaining:
        return None
    # Exponent kept small so factor**n never overflows; the ceiling is capped anyway.
    exponent = min(attempts - 1, 64)
    ceiling = min(policy.max_delay, policy.base * policy.factor**exponent)
    delay = max(rng() * ceiling, floor)
    return min(delay, remaining, policy.max_countdown)


def countdown_for(
    error: BaseException,
    attempts: int,
    *,
    elapsed: float,
    policy: BackoffPolicy,
    rng: Callable[[], float] = random.random,
) -> float | None:
    """The countdown before retrying after ``error``, or ``None`` to fail now.

    Non-retryable errors always give ``None``; a :class:`RateLimitError`'s ``retry_after``
    is the floor.
    """
    if not is_retryable(error):
        return None
    retry_after = error.retry_after if isinstance(error, RateLimitError) else None
    return compute_backoff(
        attempts, elapsed=elapsed, policy=policy, retry_after=retry_after, rng=rng
    )

"""One attempt of a provider task, and what follows it: a result, a retry or a failure.

Retries
    :class:`~providers.errors.RateLimitError` and
    :class:`~providers.errors.TransientProviderError` are retried with
    ``self.retry(countdown=...)``, the countdown from :func:`workers.backoff.countdown_for`:
    exponential with full jitter, the server's ``retry_after`` as a floor, capped below the
    broker's limit on an unacknowledged delivery (a Redis visibility timeout, RabbitMQ's
    ``consumer_timeout``), and never past the total deadline counted from the first
    delivery (kept in Redis by :mod:`workers.deliveries`; without a Redis, from the first
    attempt's start, carried in the ``hearth_first_attempt_at`` message header). Every other
    error fails at once.

Lost workers
    Every delivery is counted in Redis before the provider is called
    (:mod:`workers.deliveries` states the rule): a retry is a new attempt, bounded by
    ``HEARTH_PROVIDER_MAX_ATTEMPTS``; a message delivered again because its worker died is a
    lost delivery, and after ``HEARTH_PROVIDER_MAX_DELIVERIES`` of them the task ends in
    FAILURE with :class:`~workers.deliveries.RedeliveryLimitError`, its message acknowledged,
    the provider not called. An old attempt delivered after a newer one is dropped
    (``Ignore``). When the count cannot be made (Redis down), the attempt is retried like a
    transient error; with no Redis configured at all, deliveries are not counted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from celery import Task
from celery.exceptions import Ignore

from providers.errors import InvalidRequestError, ProviderError, TransientProviderError
from providers.redaction import redact_exception
from workers import context as worker_context
from workers import deliveries
from workers.backoff import BackoffPolicy, countdown_for, is_retryable
from workers.metrics import families as metrics
from workers.settings import Settings, get_settings
from workers.tasks.failures import ProviderTaskError
from workers.tasks.private import private_values

# The provider tasks' logger: their retries and failures are logged under one name.
logger = logging.getLogger("hearth.providers")

FIRST_ATTEMPT_HEADER = "hearth_first_attempt_at"
"""Message header: the Unix time the first attempt started, kept across retries."""


def settings_of(task: Task[Any, Any]) -> Settings:
    """The settings of the app running ``task`` (``workers.app`` keeps them on the app)."""
    settings = getattr(task.app, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def backoff_policy(settings: Settings, deadline_seconds: float | None = None) -> BackoffPolicy:
    """The retry limits of provider tasks under ``settings``.

    Raises:
        InvalidRequestError: ``deadline_seconds`` is not a positive number.
    """
    deadline = settings.provider_task_deadline_seconds
    if deadline_seconds is not None:
        if (
            isinstance(deadline_seconds, bool)
            or not isinstance(deadline_seconds, int | float)
            or not math.isfinite(deadline_seconds)
            or deadline_seconds <= 0
        ):
            raise InvalidRequestError(
                f"deadline_seconds must be a positive number; got {deadline_seconds!r}"
            )
        deadline = float(deadline_seconds)
    return BackoffPolicy(
        base=settings.provider_backoff_base_seconds,
        max_delay=settings.provider_backoff_max_seconds,
        max_attempts=settings.provider_max_attempts,
        deadline=deadline,
        # The broker's limit on an unacknowledged delivery: Redis's visibility timeout or
        # RabbitMQ's consumer_timeout. An ETA message waits unacknowledged on the worker.
        visibility_timeout=float(settings.unacked_limit_seconds),
    )


def first_attempt_at(task: Task[Any, Any], now: float) -> float:
    """When the first attempt of this task started (``now`` on the first attempt)."""
    headers = task.request.headers or {}
    raw = headers.get(FIRST_ATTEMPT_HEADER, getattr(task.request, FIRST_ATTEMPT_HEADER, None))
    try:
        value = float(raw) if raw is not None else now
    except (TypeError, ValueError):
        return now
    return value if math.isfinite(value) and value <= now else now


def count_delivery(
    task: Task[Any, Any], settings: Settings, policy: BackoffPolicy, now: float
) -> deliveries.Delivery | None:
    """Count this delivery of ``task`` in Redis; ``None`` when no Redis is configured.

    Raises:
        TransientProviderError: Redis could not be reached (the attempt is retried).
    """
    if not settings.redis_url or not task.request.id:
        return None
    ttl = deliveries.ttl_seconds(policy.deadline, policy.visibility_timeout)
    try:
        client = worker_context.get_context(settings).redis
        return deliveries.record(
            client, str(task.request.id), int(task.request.retries or 0), now=now, ttl=ttl
        )
    except redis.RedisError as exc:
        raise TransientProviderError(
            f"could not count this delivery in Redis: {type(exc).__name__}",
            error_type="delivery_count_unavailable",
        ) from None


def run_attempt(
    task: Task[Any, Any],
    settings: Settings,
    call: Callable[[], dict[str, Any]],
    *,
    deadline_seconds: float | None = None,
) -> dict[str, Any]:
    """Run one attempt of ``call``: its result, or a retry, or the task's failure.

    Raises:
        ProviderTaskError: the call failed with an error that is not retried, or retries
            are spent (max attempts, deadline); the task ends in FAILURE.
        RedeliveryLimitError: too many deliveries of this task were lost with their worker.
        Ignore: this delivery is a stale copy of an attempt already superseded by a retry.
    """
    now = time.time()
    started = first_attempt_at(task, now)
    attempts = task.request.retries + 1
    private = private_values(task)
    failed: ProviderTaskError | None = None
    try:
        policy = backoff_policy(settings, deadline_seconds)
        delivery = count_delivery(task, settings, policy, now)
        if delivery is not None:
            started = min(delivery.first_delivered_at, now)
            check_delivery(task, settings, delivery)
        payload = call_without_credentials(call, private)
    except deliveries.RedeliveryLimitError:
        raise
    except ProviderError as raised:
        exc = redact_exception(raised, private)
        assert isinstance(exc, ProviderError)
        elapsed = max(time.time() - started, 0.0)
        if not is_retryable(exc):
            logger.warning("%s failed, not retried: %s", task.name, _describe(exc))
            failed = ProviderTaskError.from_error(
                exc, attempts=attempts, elapsed=elapsed, gave_up=None
            )
        elif (countdown := countdown_for(exc, attempts, elapsed=elapsed, policy=policy)) is None:
            gave_up = "max_attempts" if attempts >= policy.max_attempts else "deadline"
            logger.warning(
                "%s gave up after %d attempt(s) in %.1f s (%s): %s",
                task.name,
                attempts,
                elapsed,
                gave_up,
                _describe(exc),
            )
            failed = ProviderTaskError.from_error(
                exc, attempts=attempts, elapsed=elapsed, gave_up=gave_up
            )
        else:
            logger.info(
                "%s attempt %d failed (%s); retrying in %.2f s",
                task.name,
                attempts,
                _describe(exc),
                countdown,
            )
            metrics.count_retry(exc.provider or "unknown", type(exc).__name__)
            headers = {**(task.request.headers or {}), FIRST_ATTEMPT_HEADER: started}
            raise task.retry(exc=exc, countdown=countdown, headers=headers) from None
    if failed is not None:
        # Raised here, outside the except block: the provider error (and whatever it
        # chained) does not ride along as its context into the stored traceback.
        raise failed
    return {"ok": True, "attempts": attempts, **payload}


def call_without_credentials(
    call: Callable[[], dict[str, Any]], private: Sequence[str] = ()
) -> dict[str, Any]:
    """``call()``; an exception it raises is re-raised redacted (and its cause and context).

    Credentials and the ``private`` texts (the task's prompts) are redacted. A bug's
    exception fails the task: Celery stores it, sends it in the task-failed event and logs
    it (its ``data`` extra too) from the exception itself, so it is cleaned here, where it
    is raised. It is raised outside the ``except`` block, so the original does not ride
    along as its context.
    """
    error: BaseException | None = None
    try:
        return call()
    except Exception as exc:
        error = redact_exception(exc, private)
        if error is exc:
            raise
    raise error


def check_delivery(task: Task[Any, Any], settings: Settings, delivery: deliveries.Delivery) -> None:
    """Let ``delivery`` call the provider, or end the task without calling it.

    Raises:
        RedeliveryLimitError: the task is given up (FAILURE; its message is acknowledged).
        Ignore: a stale delivery, dropped without a result.
    """
    verdict = deliveries.verdict(delivery, settings.provider_max_deliveries)
    if delivery.deliveries > 1 and verdict is not deliveries.Verdict.STALE:
        metrics.count_redelivery(task.name)
    if verdict is deliveries.Verdict.RUN:
        if delivery.deliveries > 1:
            logger.warning(
                "%s[%s] attempt %d delivered again after its worker was lost "
                "(%d of %d lost deliveries allowed)",
                task.name,
                task.request.id,
                delivery.attempt + 1,
                delivery.lost,
                settings.provider_max_deliveries - 1,
            )
        return
    if verdict is deliveries.Verdict.STALE:
        logger.warning(
            "%s[%s] attempt %d dropped: a later attempt was already delivered",
            task.name,
            task.request.id,
            delivery.attempt + 1,
        )
        raise Ignore()
    error = deliveries.give_up_error(
        task.name, str(task.request.id), delivery, settings.provider_max_deliveries
    )
    logger.error("%s", error.message)
    raise error


def _describe(error: ProviderError) -> str:
    return f"{type(error).__name__}: {error.message}"

"""Provider tasks: ``generate``, ``generate_structured``, ``embed`` and ``embed_batch``.

They run on the ``providers`` queue (``hearth.providers.*``), so slow LLM calls never hold
up the maintenance sweeps. Each worker process builds its providers once, from settings,
with the SDKs' own retries off (:mod:`workers.provider_registry`): this layer is the one
retry owner.

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

Results (always JSON)
    Success: ``{"ok": true, "attempts": n, ...}`` with ``response`` (an
    :class:`~providers.LLMResponse` as JSON) for ``generate``; ``data`` (the parsed model as
    JSON) and ``response`` for ``generate_structured``; ``embedding`` or ``embeddings`` plus
    ``model`` and ``dimensions`` for the embedding tasks.

    Failure: the task ends in Celery's FAILURE state with a
    :class:`~workers.tasks.failures.ProviderTaskError` whose fields are ``error``
    (:meth:`ProviderError.to_dict`: ``type`` is the error's class name, e.g.
    ``"AuthenticationError"``; ``message``, ``status_code``, ``request_id``,
    ``retry_after``, ``raw_text`` are kept), ``retryable``, ``attempts``,
    ``elapsed_seconds`` and ``gave_up`` (``None``, ``"max_attempts"`` or ``"deadline"``).
    It survives the JSON result backend: ``AsyncResult.get()`` raises it, fields intact, and
    :meth:`~workers.tasks.failures.ProviderTaskError.provider_error` gives back the typed
    :class:`ProviderError`. Chains, chords, errbacks and Flower see the failure.

Customer text
    Prompts, system prompts and texts never reach task events, Flower or the worker log:
    every message of these tasks (first sends and retries alike) carries an
    ``argsrepr``/``kwargsrepr`` in which those arguments are replaced by their size
    (:func:`workers.redaction.private_reprs`), their results are not shown in events or log
    lines (:func:`workers.redaction.hide_results_of`), and any of those texts an error
    quotes is redacted from the stored exception, its message and its traceback.

Bad input is refused before any network call, as a failure of type
``InvalidRequestError``: an empty prompt or text, an empty batch, a text over the model's
limit, a schema path that does not name a pydantic model, a bad ``deadline_seconds``. Wrong
settings (no provider, a model of another vendor) fail with type ``ProviderSettingsError``.

``generate_structured`` takes the schema as an importable dotted path to a pydantic model,
``"package.module:Model"`` or ``"package.module.Model"`` (:func:`schema_path` makes one
from a class). The worker imports that module; only a pydantic ``BaseModel`` subclass is
accepted.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import redis
from celery import Task, shared_task, signals
from celery.exceptions import Ignore
from pydantic import BaseModel

from providers.base import DEFAULT_MAX_TOKENS
from providers.errors import InvalidRequestError, ProviderError, TransientProviderError
from providers.redaction import redact_exception
from workers import context as worker_context
from workers import deliveries, lifecycle, provider_registry, redaction
from workers.backoff import BackoffPolicy, countdown_for, is_retryable
from workers.metrics import families as metrics
from workers.provider_registry import ProviderSettingsError
from workers.settings import Settings, get_settings
from workers.tasks.failures import ProviderTaskError

logger = logging.getLogger("hearth.providers")

FIRST_ATTEMPT_HEADER = "hearth_first_attempt_at"
"""Message header: the Unix time the first attempt started, kept across retries."""

PRIVATE_PARAMETERS = frozenset({"prompt", "system_prompt", "stop_sequences", "text", "texts"})
"""Arguments of provider tasks that hold customer text: never shown, only their size."""


class ProviderTask(Task[Any, Any]):
    """A task whose customer-text arguments stay out of events, Flower and logs.

    Every message it sends carries ``argsrepr``/``kwargsrepr`` with the
    :data:`PRIVATE_PARAMETERS` hidden. Celery's :meth:`Task.retry` builds the retry's
    message from the request's execution options, which hold no reprs, so it would fall
    back to the full arguments: :meth:`retry` passes the hidden ones along.
    """

    private_parameters: ClassVar[frozenset[str]] = PRIVATE_PARAMETERS

    def private_reprs(
        self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> tuple[str, str]:
        """``(argsrepr, kwargsrepr)`` for a call with ``args`` and ``kwargs``."""
        return redaction.private_reprs(self.run, args, kwargs, self.private_parameters)

    def private_values(self) -> list[str]:
        """The customer texts of the request being run (to redact from its errors)."""
        request = self.request
        names = list(inspect.signature(self.run).parameters)
        given = dict(zip(names, request.args or (), strict=False))
        given.update(request.kwargs or {})
        return list(_strings(v for k, v in given.items() if k in self.private_parameters))

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: Any = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: Any = None,
        **options: Any,
    ) -> Any:
        """Send the task as :meth:`Task.apply_async` does, its customer text hidden."""
        if options.get("argsrepr") is None or options.get("kwargsrepr") is None:
            argsrepr, kwargsrepr = self.private_reprs(args, kwargs)
            options["argsrepr"] = options.get("argsrepr") or argsrepr
            options["kwargsrepr"] = options.get("kwargsrepr") or kwargsrepr
        return super().apply_async(
            args, kwargs, task_id, producer, link, link_error, shadow, **options
        )

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: Any = None,
        throw: bool = True,
        eta: Any = None,
        countdown: Any = None,
        max_retries: Any = None,
        **options: Any,
    ) -> Any:
        """Retry as :meth:`Task.retry` does; the new message's reprs hide customer text."""
        argsrepr, kwargsrepr = self.private_reprs(
            self.request.args if args is None else args,
            self.request.kwargs if kwargs is None else kwargs,
        )
        options.setdefault("argsrepr", argsrepr)
        options.setdefault("kwargsrepr", kwargsrepr)
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)


def _strings(values: Any) -> Iterator[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list | tuple):
            yield from _strings(value)


TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "base": ProviderTask,
    # A provider call has no side effect here, so running it again after a lost worker is
    # safe; the retry count is this module's business (max_retries=None lets it decide).
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,
    "ignore_result": False,
    # Expected outcomes: logged without a traceback.
    "throws": (ProviderTaskError, deliveries.RedeliveryLimitError),
}

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED_PATH = re.compile(rf"^{_NAME}(\.{_NAME})*(:{_NAME}(\.{_NAME})*)?$")


# ---- the tasks ------------------------------------------------------------------------


@shared_task(name="hearth.providers.generate", **TASK_OPTIONS)
def generate(
    self: Task[Any, Any],
    prompt: str,
    system_prompt: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    temperature: float | None = None,
    stop_sequences: list[str] | None = None,
    deadline_seconds: float | None = None,
) -> dict[str, Any]:
    """Generate a reply to ``prompt`` with the configured LLM; see the module docstring."""
    settings = settings_of(self)

    def call() -> dict[str, Any]:
        response = provider_registry.llm_provider(settings).generate(
            prompt,
            system_prompt=system_prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            stop_sequences=stop_sequences,
        )
        return {"response": response.model_dump(mode="json")}

    return run_attempt(self, settings, call, deadline_seconds=deadline_seconds)


@shared_task(name="hearth.providers.generate_structured", **TASK_OPTIONS)
def generate_structured(
    self: Task[Any, Any],
    prompt: str,
    schema: str,
    system_prompt: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    temperature: float | None = None,
    deadline_seconds: float | None = None,
) -> dict[str, Any]:
    """Generate a reply shaped by the pydantic model at dotted path ``schema``."""
    settings = settings_of(self)

    def call() -> dict[str, Any]:
        model_cls = resolve_schema(schema)
        parsed, response = provider_registry.llm_provider(settings).generate_structured(
            prompt,
            model_cls,
            system_prompt=system_prompt,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        return {
            "data": parsed.model_dump(mode="json"),
            "response": response.model_dump(mode="json"),
        }

    return run_attempt(self, settings, call, deadline_seconds=deadline_seconds)


@shared_task(name="hearth.providers.embed", **TASK_OPTIONS)
def embed(self: Task[Any, Any], text: str, deadline_seconds: float | None = None) -> dict[str, Any]:
    """Embed one text with the configured embedding model."""
    settings = settings_of(self)

    def call() -> dict[str, Any]:
        provider = provider_registry.require_embedding_provider(settings)
        vector = provider.embed(text)
        return {"embedding": vector, "model": provider.model_id, "dimensions": len(vector)}

    return run_attempt(self, settings, call, deadline_seconds=deadline_seconds)


@shared_task(name="hearth.providers.embed_batch", **TASK_OPTIONS)
def embed_batch(
    self: Task[Any, Any], texts: list[str], deadline_seconds: float | None = None
) -> dict[str, Any]:
    """Embed many texts, one vector per text in order (chunked to the API's limits)."""
    settings = settings_of(self)

    def call() -> dict[str, Any]:
        provider = provider_registry.require_embedding_provider(settings)
        vectors = provider.embed_batch(texts)
        return {
            "embeddings": vectors,
            "model": provider.model_id,
            "dimensions": provider.dimensions,
        }

    return run_attempt(self, settings, call, deadline_seconds=deadline_seconds)


PROVIDER_TASKS = (generate, generate_structured, embed, embed_batch)
"""The tasks that take customer text."""

for _task in PROVIDER_TASKS:
    # Their results hold generated text and vectors of customer text.
    redaction.hide_results_of(_task.name)


@signals.before_task_publish.connect
def _hide_customer_text(
    sender: str | None = None,
    body: Any = None,
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    # The last word on what a provider task's message shows, whoever sends it: a client
    # calling ``app.send_task("hearth.providers.generate", ...)`` by name goes through no
    # ProviderTask method. The headers are the very ones published.
    task = next((t for t in PROVIDER_TASKS if t.name == sender), None)
    if task is None or headers is None or not isinstance(body, list | tuple) or len(body) < 2:
        return
    args, kwargs = body[0], body[1]
    if isinstance(args, list | tuple) and isinstance(kwargs, Mapping):
        headers["argsrepr"], headers["kwargsrepr"] = task.private_reprs(args, kwargs)


# ---- one attempt, and what follows it ----------------------------------------------------


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


def private_values(task: Task[Any, Any]) -> list[str]:
    """The customer texts the running request of ``task`` was given (empty if none)."""
    if isinstance(task, ProviderTask):
        return task.private_values()
    return []


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


# ---- schemas ---------------------------------------------------------------------------


def schema_path(schema: type[BaseModel]) -> str:
    """The dotted path ``generate_structured`` takes for a pydantic model class.

    Raises:
        InvalidRequestError: ``schema`` is not a module-level pydantic model class.
    """
    if not (inspect.isclass(schema) and issubclass(schema, BaseModel)):
        raise InvalidRequestError(f"schema must be a pydantic BaseModel subclass; got {schema!r}")
    if "<" in schema.__qualname__:
        raise InvalidRequestError(
            f"{schema.__qualname__} is defined inside a function; a worker cannot import it"
        )
    return f"{schema.__module__}:{schema.__qualname__}"


def resolve_schema(path: str) -> type[BaseModel]:
    """The pydantic model class at ``path`` (``"pkg.module:Model"`` or ``"pkg.module.Model"``).

    Raises:
        InvalidRequestError: ``path`` is malformed, cannot be imported, or does not name a
            pydantic ``BaseModel`` subclass.
    """
    if (
        not isinstance(path, str)
        or not _DOTTED_PATH.match(path.strip())
        or not any(sep in path for sep in ".:")
    ):
        raise InvalidRequestError(
            "schema must be the dotted path of a pydantic model, like 'package.module:Model'; "
            f"got {path!r}"
        )
    path = path.strip()
    if ":" in path:
        module_name, _, qualname = path.partition(":")
        names = qualname.split(".")
    else:
        module_name, _, last = path.rpartition(".")
        names = [last]
    if any(name.startswith("_") for name in names):
        raise InvalidRequestError(f"schema {path!r} names a private attribute")
    try:
        target: Any = importlib.import_module(module_name)
        for name in names:
            target = getattr(target, name)
    except ImportError as exc:
        raise InvalidRequestError(f"schema {path!r} cannot be imported: {exc}") from None
    except AttributeError:
        raise InvalidRequestError(
            f"schema {path!r}: {module_name} has no {'.'.join(names)}"
        ) from None
    if not (inspect.isclass(target) and issubclass(target, BaseModel)):
        raise InvalidRequestError(
            f"schema {path!r} is not a pydantic BaseModel subclass (got {target!r})"
        )
    return target


# ---- process lifecycle -----------------------------------------------------------------


def describe_settings(settings: Settings) -> tuple[int, str]:
    """A log level and a line saying which providers the tasks will use, or what is wrong.

    Wrong settings do not stop the worker (the maintenance queue does not need them), but a
    warning at start beats finding out from the first failed task.
    """
    parts: list[str] = []
    level = logging.INFO
    try:
        llm = provider_registry.llm_spec(settings)
        parts.append(f"LLM {llm.provider}/{llm.model}")
    except ProviderSettingsError as exc:
        parts.append(exc.message)
        level = logging.WARNING
    try:
        embedding = provider_registry.embedding_spec(settings)
        parts.append(
            f"embeddings {embedding.provider}/{embedding.model} ({embedding.dimensions} dims)"
            if embedding is not None
            else "no embedding provider (the embedding backfill will do nothing)"
        )
    except ProviderSettingsError as exc:
        parts.append(exc.message)
        level = logging.WARNING
    return level, "provider tasks: " + "; ".join(parts)


@signals.worker_ready.connect
def _announce(sender: Any = None, **_: Any) -> None:
    settings = getattr(getattr(sender, "app", None), "settings", None)
    if isinstance(settings, Settings):
        level, message = describe_settings(settings)
        logger.log(level, "%s", message)


lifecycle.after_fork(provider_registry.reset_after_fork)
lifecycle.at_process_exit(lambda _pid: provider_registry.close_providers())
lifecycle.at_worker_exit(provider_registry.close_providers)


# The embedding backfill is a provider-queue task too; importing it registers it.
from workers.tasks import backfill as backfill  # noqa: E402

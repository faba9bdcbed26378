"""Provider tasks: ``generate``, ``generate_structured``, ``embed`` and ``embed_batch``.

They run on the ``providers`` queue (``hearth.providers.*``), so slow LLM calls never hold
up the maintenance sweeps. Each worker process builds its providers once, from settings,
with the SDKs' own retries off (:mod:`workers.provider_registry`): this layer is the one
retry owner.

Retries and lost workers
    Each call is one attempt run by :func:`workers.tasks.attempts.run_attempt`, whose
    module states the retry and redelivery rules.

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
    Prompts, system prompts and texts never reach task events, Flower or the worker log
    (:mod:`workers.tasks.private`); the tasks' results are not shown in events or log lines
    (:func:`workers.redaction.hide_results_of`).

Bad input is refused before any network call, as a failure of type
``InvalidRequestError``: an empty prompt or text, an empty batch, a text over the model's
limit, a schema path that does not name a pydantic model, a bad ``deadline_seconds``. Wrong
settings (no provider, a model of another vendor) fail with type ``ProviderSettingsError``.

``generate_structured`` takes the schema as an importable dotted path to a pydantic model
(:mod:`workers.tasks.schemas`; :func:`schema_path` makes one from a class).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import Task, shared_task, signals

from providers.base import DEFAULT_MAX_TOKENS
from workers import deliveries, lifecycle, provider_registry, redaction
from workers.provider_registry import ProviderSettingsError
from workers.settings import Settings
from workers.tasks.attempts import run_attempt, settings_of
from workers.tasks.failures import ProviderTaskError
from workers.tasks.periodic import IDEMPOTENT
from workers.tasks.private import ProviderTask
from workers.tasks.schemas import resolve_schema, schema_path

__all__ = [
    "PROVIDER_TASKS",
    "TASK_OPTIONS",
    "describe_settings",
    "embed",
    "embed_batch",
    "generate",
    "generate_structured",
    "schema_path",
]

logger = logging.getLogger("hearth.providers")


TASK_OPTIONS: dict[str, Any] = {
    # A provider call has no side effect here, so it is as safe to run again after a lost
    # worker as a sweep is; the retry count is run_attempt's business (max_retries=None).
    **IDEMPOTENT,
    "base": ProviderTask,
    "max_retries": None,
    # Expected outcomes: logged without a traceback.
    "throws": (ProviderTaskError, deliveries.RedeliveryLimitError),
}


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

"""The embedding backfill: rules, scenarios and episodes get an embedding of the current model.

A row needs one when it has none, or when its embedding was made by another model than the
configured one (so changing ``HEARTH_EMBEDDING_MODEL`` re-embeds everything, batch by batch).
The stores list such rows across tenants (``list_*_needing_embedding``, keyset-paged by id);
each page is embedded in one ``embed_batch`` call (the provider splits it to the API's
limits) and written back with ``set_*_embedding(..., source_text=...)``, so a text edited
while its embedding was being made is left for the next run rather than given a stale vector.

A run stops when its time budget is spent or its periodic lock is lost, and at the first
rate limit or transient failure (the next scheduled run continues where the rows still need
it: the work is idempotent). A text the provider refuses (too long, filtered) is skipped and
counted, never retried in a loop. An authentication or model error fails the run, which
``hearth status`` shows.

With no embedding provider configured the job does nothing, and says so once per process.
It runs on the ``providers`` queue under the periodic lock, like every periodic job, with
the worker context's memory store (built once per process, closed at shutdown).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery import Task, shared_task

from providers.base import EmbeddingProvider
from providers.errors import ContentFilterError, InvalidRequestError, ProviderError
from workers import jobs, lifecycle, provider_registry
from workers.backoff import is_retryable
from workers.context import WorkerContext, get_context
from workers.locks import JobLock
from workers.settings import Settings, get_settings
from workers.tasks.periodic import IDEMPOTENT, RunInfo, run_job

if TYPE_CHECKING:
    from stores.common.pagination import Page
    from stores.config import ConfigStore
    from stores.memory import MemoryStore

logger = logging.getLogger("hearth.backfill")

DEFAULT_BATCH_SIZE = 256
"""Rows read and embedded per step: one page, one ``embed_batch`` call."""

NOT_CONFIGURED = "no embedding provider configured (set HEARTH_EMBEDDING_PROVIDER)"

KINDS = ("rules", "scenarios", "episodes")

_REFUSED_TEXT = (InvalidRequestError, ContentFilterError)
"""Errors about the texts themselves: one bad text must not block the others."""


@dataclass
class BackfillResult:
    """What one backfill run did."""

    model: str
    embedded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    changed: int = 0
    """Rows whose text changed while their embedding was made; left for the next run."""
    refused: int = 0
    """Texts the provider refused (too long, blank, filtered); skipped."""
    budget_spent: bool = False
    lock_lost: bool = False
    """The run's lock was lost, so it stopped before the next page."""
    interrupted: dict[str, Any] | None = None
    """The rate limit or transient error that ended the run early, if one did."""

    @property
    def total(self) -> int:
        """Embeddings written, all kinds together."""
        return sum(self.embedded.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON counts for the job's result."""
        return {
            "model": self.model,
            "embedded": self.total,
            **{f"{kind}_embedded": count for kind, count in self.embedded.items()},
            "changed": self.changed,
            "refused": self.refused,
            "budget_spent": self.budget_spent,
            "lock_lost": self.lock_lost,
            "interrupted": self.interrupted,
        }


@dataclass(frozen=True)
class _Kind:
    name: str
    list_needing: Callable[..., Page[Any]]
    set_embedding: Callable[..., bool]
    text_of: Callable[[Any], str | None]


def backfill_embeddings(
    config: ConfigStore,
    memory: MemoryStore,
    embedder: EmbeddingProvider,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_budget_seconds: float = 20.0,
    monotonic: Callable[[], float] = time.monotonic,
    lock_lost: Callable[[], bool] | None = None,
) -> BackfillResult:
    """Embed every rule, scenario and episode lacking an embedding of ``embedder``'s model.

    Before each page, the run stops if its time budget is spent or ``lock_lost()`` says its
    periodic lock is gone.

    Raises:
        ValueError: the embedder's vectors do not have the stores' dimension.
        ProviderError: a failure that no later run would fix by itself (authentication,
            unknown model); rate limits and transient failures end the run early instead.
    """
    for store in (config, memory):
        if embedder.dimensions != store.dimensions:
            raise ValueError(
                f"the embedding model {embedder.model_id} gives {embedder.dimensions} "
                f"dimensions but the stores hold {store.dimensions}; "
                "set HEARTH_EMBEDDING_DIMENSIONS to match the schema"
            )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size!r}")
    kinds = _kinds(config, memory)
    result = BackfillResult(model=embedder.model_id)
    ends_at = monotonic() + time_budget_seconds
    stop = _Stop(ends_at, monotonic, lock_lost or _never)
    try:
        for kind in kinds:
            if not _backfill_kind(kind, embedder, result, batch_size, stop):
                break
    except ProviderError as exc:
        if not is_retryable(exc):
            raise
        result.interrupted = exc.to_dict()
        logger.warning("embedding backfill stopped early: %s: %s", type(exc).__name__, exc.message)
    return result


def _kinds(config: ConfigStore, memory: MemoryStore) -> tuple[_Kind, ...]:
    """The rows the backfill embeds, in the order it visits them."""
    return (
        _Kind(
            "rules",
            config.list_rules_needing_embedding,
            config.set_rule_embedding,
            lambda rule: rule.condition_text,
        ),
        _Kind(
            "scenarios",
            config.list_scenarios_needing_embedding,
            config.set_scenario_embedding,
            lambda scenario: scenario.entry_condition,
        ),
        _Kind(
            "episodes",
            memory.list_episodes_needing_embedding,
            memory.set_episode_embedding,
            lambda episode: episode.content,
        ),
    )


BACKLOG_CAP = 10_000
""":func:`backlog` stops counting a kind here: a gauge that says "at least this many" costs
a bounded read, however far behind the backfill is."""


def backlog(
    config: ConfigStore,
    memory: MemoryStore,
    model: str,
    *,
    cap: int = BACKLOG_CAP,
    page_size: int = 1000,
) -> dict[str, int]:
    """How many rows of each kind the backfill would embed for ``model`` (at most ``cap``).

    The same listing the backfill reads; rows with no text to embed are not counted, since
    no run would ever embed them."""
    counts: dict[str, int] = {}
    for kind in _kinds(config, memory):
        count = 0
        cursor: str | None = None
        while count < cap:
            page = kind.list_needing(model, limit=min(page_size, cap), cursor=cursor)
            count += sum(1 for item in page.items if kind.text_of(item))
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        counts[kind.name] = min(count, cap)
    return counts


def _never() -> bool:
    return False


@dataclass(frozen=True)
class _Stop:
    """When a run stops early: its budget's end, and whether its lock is gone."""

    ends_at: float
    monotonic: Callable[[], float]
    lock_lost: Callable[[], bool]

    def now(self, result: BackfillResult) -> bool:
        """True when the run must stop before its next page; says why in ``result``."""
        if self.lock_lost():
            result.lock_lost = True
        elif self.monotonic() >= self.ends_at:
            result.budget_spent = True
        return result.lock_lost or result.budget_spent


def _backfill_kind(
    kind: _Kind,
    embedder: EmbeddingProvider,
    result: BackfillResult,
    batch_size: int,
    stop: _Stop,
) -> bool:
    """Embed one kind's rows page by page; False when the run had to stop first."""
    model = embedder.model_id
    cursor: str | None = None
    while True:
        if stop.now(result):
            return False
        page = kind.list_needing(model, limit=batch_size, cursor=cursor)
        todo = [(item, text) for item in page.items if (text := kind.text_of(item))]
        vectors = _embed(embedder, [text for _, text in todo], result) if todo else []
        for (item, text), vector in zip(todo, vectors, strict=True):
            if vector is None:
                continue
            if kind.set_embedding(item.tenant_id, item.id, vector, model, source_text=text):
                result.embedded[kind.name] += 1
            else:
                result.changed += 1
        if page.next_cursor is None:
            return True
        # Rows that stay unembedded (refused, changed) sort before the cursor: never re-read.
        cursor = page.next_cursor


def _embed(
    embedder: EmbeddingProvider, texts: Sequence[str], result: BackfillResult
) -> list[list[float] | None]:
    """Vectors for ``texts``; ``None`` for a text the provider refuses."""
    try:
        return list(embedder.embed_batch(texts))
    except _REFUSED_TEXT:
        if len(texts) == 1:
            result.refused += 1
            return [None]
    # One text spoiled the batch: embed them one by one to find it and keep the others.
    vectors: list[list[float] | None] = []
    for text in texts:
        try:
            vectors.append(embedder.embed(text))
        except _REFUSED_TEXT as exc:
            result.refused += 1
            logger.warning("embedding backfill skipped a text: %s", exc.message)
            vectors.append(None)
    return vectors


# ---- the periodic job -------------------------------------------------------------------

_not_configured_said = threading.Event()


def run_backfill(
    context: WorkerContext,
    *,
    memory: MemoryStore | None = None,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    info: RunInfo | None = None,
) -> dict[str, Any]:
    """Run the embedding backfill under its periodic lock; returns the job's JSON result."""
    settings = context.settings
    budget = time_budget_seconds or settings.sweep_time_budget_seconds

    def work(lock: JobLock) -> dict[str, Any]:
        embedder = provider_registry.embedding_provider(settings)
        if embedder is None:
            if not _not_configured_said.is_set():
                _not_configured_said.set()
                logger.info("embedding backfill: %s; nothing to do", NOT_CONFIGURED)
            return {"embedded": 0, "reason": NOT_CONFIGURED}
        result = backfill_embeddings(
            context.config,
            memory if memory is not None else context.memory,
            embedder,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            time_budget_seconds=budget,
            lock_lost=lambda: lock.lost,
        )
        return result.as_dict()

    # The heartbeat keeps the lock through a slow provider call: its expiry need not cover one.
    return run_job(context, jobs.EMBEDDING_BACKFILL, work, info=info)


@lifecycle.after_fork
def reset_after_fork() -> None:
    """Forget the "not configured" notice, so each worker process says it once."""
    _not_configured_said.clear()


@shared_task(name=jobs.TASK_NAMES[jobs.EMBEDDING_BACKFILL], **IDEMPOTENT)
def embedding_backfill(
    self: Task[Any, Any],
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """Embedding backfill: rows missing an embedding of the configured model get one."""
    settings = getattr(self.app, "settings", None)
    context = get_context(settings if isinstance(settings, Settings) else get_settings())
    info = RunInfo.of_task(self, trigger)
    return run_backfill(
        context, batch_size=batch_size, time_budget_seconds=time_budget_seconds, info=info
    )

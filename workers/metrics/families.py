"""Every metric family of DESIGN §10, the label sets known in advance, and how runs map.

Counters and histograms live here; the five gauges measured by the collector thread
(sessions per tier, their bytes, the idle backlog, the oldest idle age, the embedding
backfill backlog) are served from its cache by :mod:`workers.metrics.gauges`, whose names
are listed here too so that :data:`FAMILY_NAMES` is the whole of §10.

Outcome of a periodic run (``hearth_sweep_runs_total{outcome}``)
    ================================  ==================
    run status (:class:`RunStatus`)   outcome
    ================================  ==================
    ``ok``, the work finished         ``ok``
    ``ok``, the work did not finish   ``partial``
    ``lock_lost``                     ``partial``
    ``skipped`` (lock held elsewhere) ``skipped_locked``
    ``failed``                        ``failed``
    ================================  ==================

    A run "did not finish" when its result says ``complete: false`` (a sweep whose time
    budget ran out with full batches still coming) or, for the embedding backfill,
    ``budget_spent`` or ``interrupted`` (a rate limit ended it early): the next run goes on
    from there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

from workers import jobs

# The ``*_created`` series say when a series was first touched in this process: noise here,
# and multiprocess mode never serves them, so both modes serve the same series.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)
"""The families of this process; served as they are in single-process mode (in multiprocess
mode the files of every process are served instead)."""

TIERS = ("hot", "cold")
OUTCOMES = ("ok", "partial", "failed", "skipped_locked")
TOKEN_KINDS = ("input", "output", "cached")
BACKFILL_KINDS = ("rules", "scenarios", "episodes")
"""The ``kind`` of ``hearth_embedding_backfill_backlog``: the backfill's own kinds."""
RATE_LIMITED = "RateLimitError"
"""The ``outcome`` of a provider request the vendor refused with HTTP 429 (the error's class
name, like every failed outcome)."""

ITEM_KEYS: Mapping[str, str] = {
    jobs.DEMOTE: "demoted",
    jobs.PURGE: "purged",
    jobs.SCENARIO_MIGRATION: "marked",
    jobs.EMBEDDING_BACKFILL: "embedded",
}
"""The result key holding what each job's run moved, marked or wrote (its items)."""

UNMOVABLE_KEYS: Mapping[str, tuple[str, ...]] = {
    jobs.DEMOTE: ("quarantined", "changed"),
    jobs.EMBEDDING_BACKFILL: ("refused", "changed"),
}
"""Result keys counting items a run left where they were; the key is the ``reason``."""

INCOMPLETE_KEYS = ("budget_spent", "interrupted")
"""Result keys (besides ``complete: false``) saying a run stopped before it was done."""

SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
STORE_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
PROVIDER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

SWEEP_RUNS = Counter(
    "hearth_sweep_runs_total",
    "Runs of each periodic job, by how they ended.",
    ["job", "outcome"],
    registry=REGISTRY,
)
SWEEP_ITEMS = Counter(
    "hearth_sweep_items_total",
    "Items a periodic job moved, removed, marked or embedded.",
    ["job"],
    registry=REGISTRY,
)
SWEEP_DURATION = Histogram(
    "hearth_sweep_duration_seconds",
    "Wall time of each periodic run (skipped runs included).",
    ["job"],
    buckets=SWEEP_BUCKETS,
    registry=REGISTRY,
)
SWEEP_UNMOVABLE = Counter(
    "hearth_sweep_unmovable_total",
    "Items a periodic run had to leave where they were, by reason.",
    ["job", "reason"],
    registry=REGISTRY,
)
STORE_SECONDS = Histogram(
    "hearth_store_operation_seconds",
    "Time of each public store call made by the workers.",
    ["store", "operation"],
    buckets=STORE_BUCKETS,
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "hearth_store_errors_total",
    "Store calls that raised a store error, by its class name.",
    ["store", "operation", "error"],
    registry=REGISTRY,
)
PROVIDER_REQUESTS = Counter(
    "hearth_provider_requests_total",
    "Provider calls, by outcome: ok, or the provider error's class name.",
    ["provider", "model", "outcome"],
    registry=REGISTRY,
)
PROVIDER_SECONDS = Histogram(
    "hearth_provider_request_seconds",
    "Time of each provider call, failed ones included.",
    ["provider", "model"],
    buckets=PROVIDER_BUCKETS,
    registry=REGISTRY,
)
PROVIDER_TOKENS = Counter(
    "hearth_provider_tokens_total",
    "Tokens billed, by kind (cached: input tokens read from the vendor's prompt cache).",
    ["provider", "model", "kind"],
    registry=REGISTRY,
)
PROVIDER_RETRIES = Counter(
    "hearth_provider_retries_total",
    "Provider task attempts retried, by the error's class name.",
    ["provider", "reason"],
    registry=REGISTRY,
)
PROVIDER_REDELIVERIES = Counter(
    "hearth_provider_redeliveries_total",
    "Provider task deliveries repeated because the worker running them was lost.",
    ["task"],
    registry=REGISTRY,
)

FAMILIES: tuple[MetricWrapperBase, ...] = (
    SWEEP_RUNS,
    SWEEP_ITEMS,
    SWEEP_DURATION,
    SWEEP_UNMOVABLE,
    STORE_SECONDS,
    STORE_ERRORS,
    PROVIDER_REQUESTS,
    PROVIDER_SECONDS,
    PROVIDER_TOKENS,
    PROVIDER_RETRIES,
    PROVIDER_REDELIVERIES,
)
"""The families kept per process (summed over processes in multiprocess mode)."""

GAUGE_NAMES = (
    "hearth_sessions",
    "hearth_session_bytes",
    "hearth_sessions_idle_backlog",
    "hearth_sessions_oldest_idle_seconds",
    "hearth_embedding_backfill_backlog",
)
"""The gauges :mod:`workers.metrics.gauges` serves from its cache."""

FAMILY_NAMES: tuple[str, ...] = (
    *(next(iter(metric.describe())).name for metric in FAMILIES),
    *GAUGE_NAMES,
)
"""Every family of DESIGN §10 as the exposition names it (counters without ``_total``)."""


def _initialise() -> None:
    """Create the label sets known in advance, so their series exist (at 0) from the start."""
    for job in jobs.JOBS:
        SWEEP_ITEMS.labels(job=job)
        SWEEP_DURATION.labels(job=job)
        for outcome in OUTCOMES:
            SWEEP_RUNS.labels(job=job, outcome=outcome)
    for job, reasons in UNMOVABLE_KEYS.items():
        for reason in reasons:
            SWEEP_UNMOVABLE.labels(job=job, reason=reason)


_initialise()


def initialise_provider(provider: str, model: str) -> None:
    """Create the series of a provider and model the settings name (before any call)."""
    PROVIDER_SECONDS.labels(provider=provider, model=model)
    for outcome in ("ok", RATE_LIMITED):
        PROVIDER_REQUESTS.labels(provider=provider, model=model, outcome=outcome)
    for kind in TOKEN_KINDS:
        PROVIDER_TOKENS.labels(provider=provider, model=model, kind=kind)
    PROVIDER_RETRIES.labels(provider=provider, reason=RATE_LIMITED)


def sweep_outcome(status: jobs.RunStatus, result: Mapping[str, Any] | None) -> str:
    """The §10 outcome of a run that ended with ``status`` and ``result`` (see the table)."""
    if status is jobs.RunStatus.SKIPPED:
        return "skipped_locked"
    if status is jobs.RunStatus.FAILED:
        return "failed"
    if status is jobs.RunStatus.LOCK_LOST:
        return "partial"
    data = result or {}
    if data.get("complete") is False or any(data.get(key) for key in INCOMPLETE_KEYS):
        return "partial"
    return "ok"


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(int(value), 0)


def observe_run(
    job: str, status: jobs.RunStatus, result: Mapping[str, Any] | None, seconds: float
) -> str:
    """Count one run of ``job``: its outcome, items, unmovable items and duration.

    Returns the outcome."""
    outcome = sweep_outcome(status, result)
    data = result or {}
    if status is jobs.RunStatus.OK and "shards_sent" in data:
        # A dispatch that sent its shard tasks swept nothing itself: each shard's run is
        # counted when it ends. A dispatch skipped or failed is counted, as any run is.
        return outcome
    SWEEP_RUNS.labels(job=job, outcome=outcome).inc()
    SWEEP_DURATION.labels(job=job).observe(max(seconds, 0.0))
    key = ITEM_KEYS.get(job)
    if key is not None:
        SWEEP_ITEMS.labels(job=job).inc(_count(data.get(key)))
    for reason in UNMOVABLE_KEYS.get(job, ()):
        SWEEP_UNMOVABLE.labels(job=job, reason=reason).inc(_count(data.get(reason)))
    return outcome


def observe_store_call(store: str, operation: str, seconds: float, error: str | None) -> None:
    """Count one store call: its time, and the store error it raised (by class name)."""
    STORE_SECONDS.labels(store=store, operation=operation).observe(seconds)
    if error is not None:
        STORE_ERRORS.labels(store=store, operation=operation, error=error).inc()


def observe_provider_call(
    provider: str,
    model: str,
    seconds: float,
    outcome: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
) -> None:
    """Count one provider call: its outcome, its time and the tokens it was billed."""
    PROVIDER_REQUESTS.labels(provider=provider, model=model, outcome=outcome).inc()
    PROVIDER_SECONDS.labels(provider=provider, model=model).observe(seconds)
    for kind, tokens in (
        ("input", input_tokens),
        ("output", output_tokens),
        ("cached", cached_tokens),
    ):
        if tokens:
            PROVIDER_TOKENS.labels(provider=provider, model=model, kind=kind).inc(tokens)


def count_retry(provider: str, reason: str) -> None:
    """Count one provider task attempt that will be retried, by the error's class name."""
    PROVIDER_RETRIES.labels(provider=provider, reason=reason).inc()


def count_redelivery(task: str) -> None:
    """Count one delivery of ``task`` repeated after its worker was lost."""
    PROVIDER_REDELIVERIES.labels(task=task).inc()

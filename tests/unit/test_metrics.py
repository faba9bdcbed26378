"""The metric families, the outcome of a periodic run, the store wrapper and the cached
gauges, on the in-memory stores."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stores.common.clock import ManualClock
from stores.errors import InvalidInputError
from stores.sessions import InMemorySessionStore, Session
from workers import jobs
from workers.context import WorkerContext
from workers.metrics import families, server
from workers.metrics.gauges import GaugeSnapshot
from workers.metrics.instrument import instrument_store
from workers.settings import Settings
from workers.tasks import backfill

DESIGN_FAMILIES = {
    # DESIGN §10, as the exposition names them (a counter's family drops ``_total``).
    "hearth_sessions": "gauge",
    "hearth_session_bytes": "gauge",
    "hearth_sessions_idle_backlog": "gauge",
    "hearth_sessions_oldest_idle_seconds": "gauge",
    "hearth_sweep_runs": "counter",
    "hearth_sweep_items": "counter",
    "hearth_sweep_duration_seconds": "histogram",
    "hearth_sweep_unmovable": "counter",
    "hearth_store_operation_seconds": "histogram",
    "hearth_store_errors": "counter",
    "hearth_provider_requests": "counter",
    "hearth_provider_request_seconds": "histogram",
    "hearth_provider_tokens": "counter",
    "hearth_provider_retries": "counter",
    "hearth_provider_redeliveries": "counter",
    "hearth_embedding_backfill_backlog": "gauge",
}
DESIGN_LABELS = {
    "hearth_sessions": {"tier"},
    "hearth_session_bytes": {"tier"},
    "hearth_sweep_runs": {"job", "outcome"},
    "hearth_sweep_items": {"job"},
    "hearth_sweep_duration_seconds": {"job"},
    "hearth_sweep_unmovable": {"job", "reason"},
    "hearth_embedding_backfill_backlog": {"kind"},
}


def sample(name: str, **labels: str) -> float:
    value = families.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def scrape(snapshot: GaugeSnapshot) -> dict[str, Any]:
    text = generate_latest(server.registry(snapshot)).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_every_design_family_is_declared_with_its_kind() -> None:
    assert set(families.FAMILY_NAMES) == set(DESIGN_FAMILIES)
    declared = {m.describe()[0].name: m.describe()[0].type for m in families.FAMILIES}
    for name, kind in declared.items():
        assert DESIGN_FAMILIES[name] == kind, name


def test_every_family_is_served_before_any_work_with_the_known_label_sets() -> None:
    served = scrape(GaugeSnapshot())

    assert set(DESIGN_FAMILIES) <= set(served)
    for name, kind in DESIGN_FAMILIES.items():
        assert served[name].type == kind, name
    for name, labels in DESIGN_LABELS.items():
        assert served[name].samples, name
        assert all(set(s.labels) - {"le"} == labels for s in served[name].samples), name
    runs = {(s.labels["job"], s.labels["outcome"]) for s in served["hearth_sweep_runs"].samples}
    # Other tests of this process may have counted runs of jobs of their own.
    assert runs >= {(job, outcome) for job in jobs.JOBS for outcome in families.OUTCOMES}
    assert {s.labels["kind"] for s in served["hearth_embedding_backfill_backlog"].samples} == set(
        backfill.KINDS
    )


@pytest.mark.parametrize(
    ("status", "result", "outcome"),
    [
        (jobs.RunStatus.OK, {"demoted": 3, "complete": True}, "ok"),
        (jobs.RunStatus.OK, {"state": "current"}, "ok"),
        (jobs.RunStatus.OK, {"demoted": 1000, "complete": False}, "partial"),
        (jobs.RunStatus.OK, {"embedded": 5, "budget_spent": True}, "partial"),
        (jobs.RunStatus.OK, {"embedded": 5, "interrupted": {"type": "RateLimitError"}}, "partial"),
        (jobs.RunStatus.OK, {"embedded": 5, "budget_spent": False, "interrupted": None}, "ok"),
        (jobs.RunStatus.LOCK_LOST, {"demoted": 10, "complete": False}, "partial"),
        (jobs.RunStatus.SKIPPED, {"reason": "another run holds the lock"}, "skipped_locked"),
        (jobs.RunStatus.FAILED, None, "failed"),
    ],
)
def test_a_run_status_maps_onto_its_outcome(
    status: jobs.RunStatus, result: dict[str, Any] | None, outcome: str
) -> None:
    assert families.sweep_outcome(status, result) == outcome


def test_a_run_counts_its_outcome_items_duration_and_unmovable_items() -> None:
    job = jobs.EMBEDDING_BACKFILL
    before = {
        "ok": sample("hearth_sweep_runs_total", job=job, outcome="ok"),
        "items": sample("hearth_sweep_items_total", job=job),
        "refused": sample("hearth_sweep_unmovable_total", job=job, reason="refused"),
        "changed": sample("hearth_sweep_unmovable_total", job=job, reason="changed"),
        "count": sample("hearth_sweep_duration_seconds_count", job=job),
        "sum": sample("hearth_sweep_duration_seconds_sum", job=job),
    }

    outcome = families.observe_run(
        job, jobs.RunStatus.OK, {"embedded": 7, "refused": 2, "changed": 1}, 1.5
    )

    assert outcome == "ok"
    assert sample("hearth_sweep_runs_total", job=job, outcome="ok") == before["ok"] + 1
    assert sample("hearth_sweep_items_total", job=job) == before["items"] + 7
    assert sample("hearth_sweep_unmovable_total", job=job, reason="refused") == (
        before["refused"] + 2
    )
    assert sample("hearth_sweep_unmovable_total", job=job, reason="changed") == (
        before["changed"] + 1
    )
    assert sample("hearth_sweep_duration_seconds_count", job=job) == before["count"] + 1
    assert sample("hearth_sweep_duration_seconds_sum", job=job) == before["sum"] + 1.5


def test_a_failed_run_counts_no_items() -> None:
    job = jobs.DEMOTE
    items = sample("hearth_sweep_items_total", job=job)
    failed = sample("hearth_sweep_runs_total", job=job, outcome="failed")

    families.observe_run(job, jobs.RunStatus.FAILED, None, 0.2)

    assert sample("hearth_sweep_runs_total", job=job, outcome="failed") == failed + 1
    assert sample("hearth_sweep_items_total", job=job) == items


def test_a_dispatch_that_sent_its_shards_is_not_counted_but_each_shard_is() -> None:
    job = jobs.PURGE
    ok = sample("hearth_sweep_runs_total", job=job, outcome="ok")
    locked = sample("hearth_sweep_runs_total", job=job, outcome="skipped_locked")
    items = sample("hearth_sweep_items_total", job=job)

    families.observe_run(job, jobs.RunStatus.OK, {"shards_sent": 4, "group_id": "g"}, 0.01)
    assert sample("hearth_sweep_runs_total", job=job, outcome="ok") == ok
    for shard in range(4):
        families.observe_run(job, jobs.RunStatus.OK, {"purged": 2, "shard": shard}, 0.1)
    families.observe_run(job, jobs.RunStatus.SKIPPED, {"shards_sent": 0}, 0.0)

    assert sample("hearth_sweep_runs_total", job=job, outcome="ok") == ok + 4
    assert sample("hearth_sweep_items_total", job=job) == items + 8
    assert sample("hearth_sweep_runs_total", job=job, outcome="skipped_locked") == locked + 1


def test_the_backfill_kinds_are_the_backfills_own() -> None:
    assert families.BACKFILL_KINDS == backfill.KINDS


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> InMemorySessionStore:
    return InMemorySessionStore(hot_ttl=timedelta(minutes=30), clock=clock)


@pytest.fixture
def context(store: InMemorySessionStore, clock: ManualClock) -> Iterator[WorkerContext]:
    # The Redis client is never used here: it connects on first use only.
    ctx = WorkerContext.build(
        Settings(_env_file=None, redis_url="redis://127.0.0.1:1/0"), clock=clock, sessions=store
    )
    yield ctx
    ctx.close()


def new_session() -> Session:
    return Session(tenant_id=uuid4(), agent_id=uuid4(), channel="web", user_channel_id="u")


def test_a_store_call_is_timed_once_and_its_store_error_counted_by_class(
    store: InMemorySessionStore,
) -> None:
    instrument_store(store, "sessions-test")
    assert instrument_store(store, "sessions-test") is store  # idempotent
    saves = sample("hearth_store_operation_seconds_count", store="sessions-test", operation="save")
    gets = sample("hearth_store_operation_seconds_count", store="sessions-test", operation="get")

    saved = store.save(new_session())
    assert store.get(saved.tenant_id, saved.id) == saved
    with pytest.raises(InvalidInputError):
        store.get("not-a-uuid", saved.id)

    assert isinstance(store, InMemorySessionStore)
    after_saves = sample(
        "hearth_store_operation_seconds_count", store="sessions-test", operation="save"
    )
    assert after_saves == saves + 1
    assert sample(
        "hearth_store_operation_seconds_count", store="sessions-test", operation="get"
    ) == (gets + 2)
    errors = sample(
        "hearth_store_errors_total",
        store="sessions-test",
        operation="get",
        error="InvalidInputError",
    )
    assert errors == 1


def test_the_gauges_are_measured_by_the_collector_not_by_the_scrape(
    context: WorkerContext, store: InMemorySessionStore, clock: ManualClock
) -> None:
    snapshot = GaugeSnapshot()
    served = scrape(snapshot)
    assert math.isnan(served["hearth_sessions_idle_backlog"].samples[0].value)

    for _ in range(3):
        store.save(new_session())
    clock.advance(minutes=45)
    store.save(new_session())
    unchanged = scrape(snapshot)
    assert math.isnan(unchanged["hearth_sessions_idle_backlog"].samples[0].value)

    snapshot.measure(context)
    served = scrape(snapshot)

    tiers = {s.labels["tier"]: s.value for s in served["hearth_sessions"].samples}
    assert tiers == {"hot": 4, "cold": 0}
    assert served["hearth_sessions_idle_backlog"].samples[0].value == 3
    assert served["hearth_sessions_oldest_idle_seconds"].samples[0].value == 45 * 60
    # No database and no embedding model here: the backlog is unknown, not zero.
    backlog = served["hearth_embedding_backfill_backlog"].samples
    assert all(math.isnan(s.value) for s in backlog)

    assert store.demote_idle() == 3
    snapshot.measure(context)
    served = scrape(snapshot)
    tiers = {s.labels["tier"]: s.value for s in served["hearth_sessions"].samples}
    assert tiers == {"hot": 1, "cold": 3}
    assert served["hearth_sessions_idle_backlog"].samples[0].value == 0
    assert served["hearth_sessions_oldest_idle_seconds"].samples[0].value == 0

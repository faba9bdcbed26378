"""Each periodic task, end to end: a real worker, a real broker, real Redis and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from uuid import uuid4

import pytest

from stores.common.clock import ManualClock
from stores.config import Agent, MigrationPlan, Scenario, ScenarioStep
from stores.config.postgres import PostgresConfigStore
from stores.sessions import Tier
from stores.sessions.redis import RedisSessionStore
from tests.integration.workers_support import (
    BROKERS,
    broker_settings,
    running_worker,
    save_sessions,
    send,
    settings,
)
from workers import jobs
from workers.app import HearthCelery
from workers.context import WorkerContext, install_context
from workers.locks import JobLock

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.postgres]

HOT_TTL = timedelta(minutes=30)
MAX_AGE = timedelta(hours=2)
DEMOTE = jobs.TASK_NAMES[jobs.DEMOTE]
PURGE = jobs.TASK_NAMES[jobs.PURGE]
SCENARIOS = jobs.TASK_NAMES[jobs.SCENARIO_MIGRATION]
SCHEMA = jobs.TASK_NAMES[jobs.SCHEMA_CHECK]


@pytest.fixture(scope="module", params=BROKERS)
def worker_app(request: pytest.FixtureRequest, redis_server_url: str) -> Iterator[HearthCelery]:
    """One worker per broker for the whole module; each test installs its own context."""
    with running_worker(broker_settings(request.param, redis_server_url)) as app:
        yield app


@pytest.fixture
def store(redis_url: str, database_url: str, clock: ManualClock) -> Iterator[RedisSessionStore]:
    store = RedisSessionStore.from_url(
        redis_url,
        hot_ttl=HOT_TTL,
        max_age=MAX_AGE,
        cold_tier="postgres",
        database_url=database_url,
        clock=clock,
    )
    yield store
    store.close()


@pytest.fixture
def context(
    redis_url: str, database_url: str, clock: ManualClock, store: RedisSessionStore
) -> Iterator[WorkerContext]:
    """The context the worker's tasks use during one test."""
    ctx = WorkerContext.build(
        settings(
            redis_url=redis_url,
            database_url=database_url,
            sweep_batch_size=7,
            sweep_shards=1,  # each task sweeps everything (test_workers_shards: split)
            session_hot_ttl_seconds=int(HOT_TTL.total_seconds()),
            session_max_age_seconds=int(MAX_AGE.total_seconds()),
        ),
        clock=clock,
        sessions=store,
    )
    previous = install_context(ctx)
    yield ctx
    install_context(previous)
    ctx.close()


def test_demotion_sweep_moves_idle_sessions_in_batches(
    worker_app: HearthCelery, context: WorkerContext, store: RedisSessionStore, clock: ManualClock
) -> None:
    idle = save_sessions(store, 20)
    clock.advance(minutes=31)
    fresh = save_sessions(store, 4)

    result = send(worker_app, DEMOTE)

    assert result["status"] == "ok"
    assert result["demoted"] == 20
    assert result["batches"] == 3  # 7 + 7 + 6: the short batch ends the sweep
    assert result["complete"] is True
    assert result["lock_lost"] is False
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.COLD for s in idle)
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.HOT for s in fresh)
    last = jobs.last_runs(context.redis)[jobs.DEMOTE]
    assert last is not None
    assert last.status is jobs.RunStatus.OK
    assert last.result["demoted"] == 20


def test_a_demotion_run_reports_the_sessions_it_left_hot_by_reason(
    worker_app: HearthCelery, context: WorkerContext, store: RedisSessionStore, clock: ManualClock
) -> None:
    idle = save_sessions(store, 3, variables={"x": "ok"})
    poison = idle[0]
    # Older data, stored before save refused it: the cold table's jsonb cannot hold NUL.
    hot_key = f"hearth:s:{{{poison.tenant_id}}}:h:{poison.id}"
    document = store.client.hget(hot_key, "d")
    assert isinstance(document, bytes)
    store.client.hset(hot_key, "d", document.replace(b'"ok"', b'"o\\u0000k"'))
    clock.advance(minutes=31)

    result = send(worker_app, DEMOTE)

    assert (result["status"], result["demoted"]) == ("ok", 2)
    assert (result["quarantined"], result["changed"]) == (1, 0)
    assert store.tier_of(poison.tenant_id, poison.id) is Tier.HOT


def test_purge_removes_expired_sessions_from_both_tiers(
    worker_app: HearthCelery, context: WorkerContext, store: RedisSessionStore, clock: ManualClock
) -> None:
    old_cold = save_sessions(store, 3)
    old_hot = save_sessions(store, 2)
    clock.advance(minutes=31)
    assert store.demote_idle(limit=100) == 5
    old_hot = [store.save(store.get(s.tenant_id, s.id)) for s in old_hot]  # type: ignore[arg-type]
    young = save_sessions(store, 2)
    clock.advance(minutes=90)  # the first five are 2 h 1 min old; the young ones 1 h 30 min

    result = send(worker_app, PURGE)

    assert result["purged"] == 5
    for s in old_cold + old_hot:
        assert store.tier_of(s.tenant_id, s.id) is None
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.HOT for s in young)
    assert send(worker_app, PURGE)["purged"] == 0


def test_scenario_migration_sweep_marks_old_version_sessions_once_in_both_tiers(
    worker_app: HearthCelery,
    context: WorkerContext,
    store: RedisSessionStore,
    clock: ManualClock,
    database_url: str,
) -> None:
    config = PostgresConfigStore.from_url(database_url, clock=clock)
    context._config = config
    tenant = uuid4()
    agent = config.create_agent(Agent(tenant_id=tenant, name="support"))
    steps = [ScenarioStep(id="start")]
    v1 = config.create_scenario(
        Scenario(tenant_id=tenant, agent_id=agent.id, name="refund", steps=steps)
    )
    v2 = config.update_scenario(v1.model_copy(update={"description": "v2"}))
    plan = config.create_migration_plan(
        MigrationPlan(tenant_id=tenant, scenario_id=v1.id, from_version=1, to_version=2)
    )
    config.approve_migration_plan(tenant, plan.id)
    config.deploy_migration_plan(tenant, plan.id)
    on = {"active_scenario_id": v1.id, "current_step_id": "start"}
    cold = save_sessions(store, 9, tenant_id=tenant, active_scenario_version=1, **on)
    clock.advance(minutes=31)
    store.demote_idle(limit=100)
    hot = save_sessions(store, 6, tenant_id=tenant, active_scenario_version=1, **on)
    newer = save_sessions(store, 2, tenant_id=tenant, active_scenario_version=v2.version, **on)

    first = send(worker_app, SCENARIOS)
    second = send(worker_app, SCENARIOS)

    assert first["marked"] == 15
    assert first["plans"] == 1
    assert second["marked"] == 0
    for before, tier in [(s, Tier.COLD) for s in cold] + [(s, Tier.HOT) for s in hot]:
        assert store.tier_of(tenant, before.id) is tier  # marking moves no session
        after = store.get(tenant, before.id)
        assert after is not None
        assert after.pending_migration is not None
        assert after.pending_migration.plan_id == plan.id
        assert after.pending_migration.to_version == 2
        assert after.version == before.version + 1  # marked exactly once
    for s in newer:
        after = store.get(tenant, s.id)
        assert after is not None
        assert after.pending_migration is None
        assert after.version == s.version


def test_schema_check_task_keeps_its_answer_for_status(
    worker_app: HearthCelery, context: WorkerContext
) -> None:
    result = send(worker_app, SCHEMA)

    assert result["state"] == "current"
    last = jobs.last_runs(context.redis)[jobs.SCHEMA_CHECK]
    assert last is not None
    assert last.result["state"] == "current"


def test_a_sweep_finding_the_lock_taken_does_nothing(
    worker_app: HearthCelery, context: WorkerContext, store: RedisSessionStore, clock: ManualClock
) -> None:
    sessions = save_sessions(store, 5)
    clock.advance(minutes=31)
    other = JobLock(context.redis, jobs.DEMOTE, ttl_seconds=60)
    assert other.acquire()

    skipped = send(worker_app, DEMOTE)

    assert skipped["status"] == "skipped"
    assert 0 < skipped["lock_expires_in"] <= 60
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.HOT for s in sessions)
    assert other.release()
    assert send(worker_app, DEMOTE)["demoted"] == 5


def test_two_sweeps_started_at_once_do_the_work_once(
    worker_app: HearthCelery,
    context: WorkerContext,
    store: RedisSessionStore,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sessions = save_sessions(store, 300)
    clock.advance(minutes=31)
    real_demote = store.demote_idle

    def demote_once_the_other_run_is_skipped(*, limit: int = 1000) -> int:
        # However the pool schedules the two, the runs overlap: the one holding the lock
        # starts working only once the other has found it taken.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            run = jobs.last_runs(context.redis)[jobs.DEMOTE]
            if run is not None and run.status is jobs.RunStatus.SKIPPED:
                break
            time.sleep(0.01)
        return real_demote(limit=limit)

    monkeypatch.setattr(store, "demote_idle", demote_once_the_other_run_is_skipped)
    pending = [worker_app.send_task(DEMOTE, kwargs={"batch_size": 5}) for _ in range(2)]
    results = [r.get(timeout=30) for r in pending]

    assert sorted(r["status"] for r in results) == ["ok", "skipped"]
    assert sum(r.get("demoted", 0) for r in results) == 300
    assert store.stats().cold_sessions == 300
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.COLD for s in sessions)

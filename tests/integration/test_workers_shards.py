"""Sharded sweeps: the beat's task sends a group of shard tasks, each under its own lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from stores.common.clock import ManualClock
from stores.sessions import Session, Shard, Tier
from stores.sessions.redis import RedisSessionStore
from tests.integration.workers_support import BROKERS, broker_settings, running_worker, send
from tests.integration.workers_support import settings as make_settings
from workers import jobs
from workers.app import create_app
from workers.context import WorkerContext, install_context
from workers.locks import JobLock
from workers.tasks import maintenance

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

HOT_TTL = timedelta(minutes=30)
MAX_AGE = timedelta(hours=2)
SHARDS = 4


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
    """A context whose sweeps are split into four shards, installed for the worker's tasks."""
    ctx = WorkerContext.build(
        make_settings(
            redis_url=redis_url,
            database_url=database_url,
            sweep_batch_size=5,
            sweep_shards=SHARDS,
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


def _spread(store: RedisSessionStore, tenants: int, each: int) -> list[Session]:
    """``each`` sessions of each of ``tenants`` tenants, the n-th tenant in bucket n, so
    that every shard has some."""
    saved = []
    for bucket in range(tenants):
        tenant = UUID(int=(uuid4().int & ~63) | bucket)
        agent = uuid4()
        for i in range(each):
            saved.append(
                store.save(
                    Session(tenant_id=tenant, agent_id=agent, channel="web", user_channel_id=f"{i}")
                )
            )
    return saved


def _owned(sessions: list[Session], shard: Shard) -> list[Session]:
    return [s for s in sessions if shard.owns(s.tenant_id)]


def _shard_runs(context: WorkerContext, job: str) -> list[jobs.JobRun | None]:
    names = tuple(jobs.run_name(job, i) for i in range(SHARDS))
    return list(jobs.last_runs(context.redis, names).values())


def test_two_shards_of_one_job_run_side_by_side_and_one_shard_never_twice(
    context: WorkerContext, store: RedisSessionStore, clock: ManualClock
) -> None:
    sessions = _spread(store, 8, 2)
    clock.advance(minutes=31)
    first, second = Shard(0, 2), Shard(1, 2)
    paused, resume = threading.Event(), threading.Event()
    owner = threading.current_thread()

    def pause_the_first_shard(step: str) -> None:
        # Only the run in the other thread (shard 0) stops here, holding its lock.
        if step == "demote:read" and threading.current_thread() is not owner:
            paused.set()
            assert resume.wait(30), "the test never resumed the first shard"

    store.step_hook = pause_the_first_shard
    results: list[dict[str, object]] = []
    runner = threading.Thread(
        target=lambda: results.append(maintenance.demote(context, shard=first))
    )
    runner.start()
    try:
        assert paused.wait(30), "the first shard never reached its first move"
        beside = maintenance.demote(context, shard=second)
        again = maintenance.demote(context, shard=first)
    finally:
        resume.set()
        runner.join(30)

    assert beside["status"] == "ok"
    assert beside["demoted"] == len(_owned(sessions, second)) == 8
    assert again["status"] == "skipped"
    assert results[0]["status"] == "ok"
    assert results[0]["demoted"] == len(_owned(sessions, first)) == 8
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.COLD for s in sessions)
    runs = jobs.last_runs(context.redis, (jobs.run_name(jobs.DEMOTE, 0),))
    last = runs[jobs.run_name(jobs.DEMOTE, 0)]
    assert last is not None
    # The skipped run came first; the paused one, which holds the count, ended last.
    assert (last.status, last.shard, last.shards) == (jobs.RunStatus.OK, 0, 2)


def test_a_dispatch_sends_every_shard_once_and_is_skipped_while_another_dispatches(
    context: WorkerContext,
) -> None:
    sent: list[list[Shard]] = []

    def send_shards(shards: list[Shard]) -> str:
        sent.append(shards)
        return "group-1"

    held = JobLock(context.redis, jobs.PURGE, 30)
    assert held.acquire()
    try:
        skipped = maintenance.dispatch(context, jobs.PURGE, send_shards)
    finally:
        held.release()
    done = maintenance.dispatch(context, jobs.PURGE, send_shards)

    assert skipped["status"] == "skipped"
    assert done["status"] == "ok"
    assert (done["shards_sent"], done["group_id"]) == (SHARDS, "group-1")
    assert sent == [Shard.split(SHARDS)]
    last = jobs.last_runs(context.redis)[jobs.PURGE]
    assert last is not None
    assert last.result["shards_sent"] == SHARDS


def _wait_for_shards(context: WorkerContext, job: str, since: float) -> list[jobs.JobRun]:
    """The shard runs of ``job`` that ended after ``since``, once all have (a worker runs
    them: poll, with a deadline)."""
    deadline = time.monotonic() + 30
    while True:
        runs = _shard_runs(context, job)
        done = [r for r in runs if r is not None and r.finished_at.timestamp() >= since]
        if len(done) == SHARDS:
            return done
        assert time.monotonic() < deadline, f"shard runs seen: {runs}"
        time.sleep(0.05)


@pytest.mark.celery
@pytest.mark.parametrize("broker", BROKERS)
def test_a_beat_dispatch_moves_every_due_session_exactly_once_across_shards(
    broker: str,
    redis_server_url: str,
    context: WorkerContext,
    store: RedisSessionStore,
    clock: ManualClock,
) -> None:
    sessions = _spread(store, 16, 3)
    clock.advance(minutes=31)
    fresh = _spread(store, 4, 1)
    since = time.time()

    with running_worker(broker_settings(broker, redis_server_url), concurrency=4) as app:
        dispatched = send(app, jobs.TASK_NAMES[jobs.DEMOTE])
        demotions = _wait_for_shards(context, jobs.DEMOTE, since)
        tiers = {s.id: store.tier_of(s.tenant_id, s.id) for s in sessions + fresh}
        clock.advance(minutes=90)  # past max_age: the first sessions, not the fresh ones
        since = time.time()
        purge = send(app, jobs.TASK_NAMES[jobs.PURGE])
        purges = _wait_for_shards(context, jobs.PURGE, since)

    assert (dispatched["status"], dispatched["shards_sent"]) == ("ok", SHARDS)
    assert sorted(r.shard for r in demotions if r.shard is not None) == list(range(SHARDS))
    assert all(r.status is jobs.RunStatus.OK for r in demotions + purges)
    # Each shard moved its own tenants' idle sessions; together, each one exactly once.
    for run in demotions:
        assert run.shard is not None
        assert run.result["demoted"] == len(_owned(sessions, Shard(run.shard, SHARDS)))
    assert sum(r.result["demoted"] for r in demotions) == len(sessions)
    assert all(tiers[s.id] is Tier.COLD for s in sessions)
    assert all(tiers[s.id] is Tier.HOT for s in fresh)
    assert store.fence_refusals == 0

    assert (purge["status"], purge["shards_sent"]) == ("ok", SHARDS)
    assert sum(r.result["purged"] for r in purges) == len(sessions)
    assert store.count_expired() == 0
    assert all(store.get(s.tenant_id, s.id) is None for s in sessions)
    assert all(store.get(s.tenant_id, s.id) is not None for s in fresh)


def test_the_shard_tasks_are_registered_acked_late_and_routed_to_maintenance() -> None:
    app = create_app(make_settings())
    app.loader.import_default_modules()

    for job in jobs.SHARDED:
        task = app.tasks[jobs.SHARD_TASK_NAMES[job]]
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
        route = app.amqp.router.route({}, task.name)
        assert route["queue"].name == "maintenance"
    app.close()

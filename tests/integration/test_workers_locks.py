"""The periodic-job lock: one holder at a time, an expiry, only the holder releases, and a
heartbeat that renews it while the job runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from stores.common.clock import ManualClock
from stores.errors import StoreError, StoreUnavailableError
from stores.sessions.redis import RedisSessionStore
from tests.integration.workers_support import save_sessions, settings
from workers import jobs
from workers.context import WorkerContext
from workers.keys import lock_key
from workers.locks import JobLock, remaining_seconds
from workers.tasks import maintenance
from workers.tasks.periodic import _release, run_job

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _wait_until_gone(client: redis.Redis, key: str, timeout: float) -> None:
    # The expiry is Redis's own clock: the only honest wait is on the key itself.
    deadline = time.monotonic() + timeout
    while client.exists(key):
        assert time.monotonic() < deadline, f"{key} outlived its expiry"
        time.sleep(0.02)


def test_one_holder_at_a_time(client: redis.Redis) -> None:
    first = JobLock(client, "job", ttl_seconds=30)
    second = JobLock(client, "job", ttl_seconds=30)

    assert first.acquire()
    assert not second.acquire()
    assert JobLock(client, "another-job", ttl_seconds=30).acquire()
    assert first.release()
    assert second.acquire()


def test_a_crashed_holder_blocks_no_longer_than_the_expiry(client: redis.Redis) -> None:
    # Long enough that a stalled test process still checks before the expiry.
    crashed = JobLock(client, "job", ttl_seconds=1.0)
    assert crashed.acquire()  # and never releases
    left = remaining_seconds(client, "job")
    assert left is not None
    assert 0 < left <= 1.0

    assert not JobLock(client, "job", ttl_seconds=30).acquire()
    _wait_until_gone(client, lock_key("job"), timeout=5.0)
    assert JobLock(client, "job", ttl_seconds=30).acquire()


def test_only_the_holder_releases(client: redis.Redis) -> None:
    slow = JobLock(client, "job", ttl_seconds=0.2)
    assert slow.acquire()
    _wait_until_gone(client, lock_key("job"), timeout=2.0)
    successor = JobLock(client, "job", ttl_seconds=30)
    assert successor.acquire()

    assert not slow.release()  # expired: it must not delete the successor's lock
    assert not slow.extend()
    assert client.exists(lock_key("job"))
    assert not JobLock(client, "job", ttl_seconds=30).acquire()
    assert successor.extend(60)
    left = remaining_seconds(client, "job")
    assert left is not None
    assert left > 30
    assert successor.release()
    assert remaining_seconds(client, "job") is None


class _Monotonic:
    """The lock's clock, moved by the test: how long since the last renewal, without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_beat_renews_the_lock_past_its_original_expiry(client: redis.Redis) -> None:
    monotonic = _Monotonic()
    lock = JobLock(client, "job", ttl_seconds=30, monotonic=monotonic)
    assert lock.acquire()
    token = client.get(lock_key("job"))
    heartbeat = lock.heartbeat()
    assert heartbeat.interval_seconds == 10

    for _ in range(4):  # 4 x 20 s: well past the 30 s the lock was taken for
        # As if 20 s had passed since the last renewal, on Redis's clock and on the lock's.
        client.pexpire(lock_key("job"), 10_000)
        monotonic.now += 20
        assert heartbeat.beat()
        left = remaining_seconds(client, "job")
        assert left is not None
        assert left > 25
        assert not lock.lost

    assert client.get(lock_key("job")) == token
    assert lock.release()


def test_the_heartbeat_thread_keeps_a_short_lock_past_its_expiry(client: redis.Redis) -> None:
    ttl = 1.0
    lock = JobLock(client, "job", ttl_seconds=ttl)
    assert lock.acquire()
    token = client.get(lock_key("job"))
    taken_at = time.monotonic()
    past_expiry = threading.Event()

    def wait(stop: threading.Event, seconds: float) -> bool:
        # Called before each beat: once this is well past the expiry, beats have kept it.
        if time.monotonic() - taken_at > 1.5 * ttl:
            past_expiry.set()
        return stop.wait(seconds)

    with lock.heartbeat(interval_seconds=0.05, wait=wait) as heartbeat:
        assert past_expiry.wait(timeout=10), "the heartbeat never ran past the expiry"
        assert heartbeat.alive
        assert not lock.lost
        assert client.get(lock_key("job")) == token
        assert not JobLock(client, "job", ttl_seconds=30).acquire()
    assert not heartbeat.alive
    assert lock.release()


def test_a_stolen_lock_is_noticed_by_the_next_beat_and_left_to_the_thief(
    client: redis.Redis,
) -> None:
    lock = JobLock(client, "job", ttl_seconds=30)
    assert lock.acquire()
    client.set(lock_key("job"), "thief", px=60_000)

    assert not lock.heartbeat().beat()
    assert lock.lost
    assert not lock.held
    assert not lock.renew()  # lost stays lost
    assert not lock.release()
    assert client.get(lock_key("job")) == b"thief"


def test_renewal_errors_are_retried_until_the_expiry_passes_then_the_lock_is_lost(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monotonic = _Monotonic()
    lock = JobLock(client, "job", ttl_seconds=30, monotonic=monotonic)
    assert lock.acquire()

    def unreachable(*_: object, **__: object) -> bool:
        raise redis.ConnectionError("Redis is away")

    monkeypatch.setattr(lock._lock, "extend", unreachable)
    monotonic.now += 10
    assert lock.renew()  # logged; the next beat retries
    assert "could not renew the job lock" in caplog.text
    monotonic.now += 19.9
    assert lock.renew()
    assert not lock.lost

    monotonic.now += 0.1  # 30 s since the lock was taken, and no renewal went through
    assert lock.lost
    assert not lock.renew()
    monkeypatch.undo()
    assert not lock.renew()  # Redis is back, but another run may have started meanwhile
    assert lock.lost


def test_extend_keeps_raising_when_redis_is_unreachable(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = JobLock(client, "job", ttl_seconds=30)
    assert lock.acquire()

    def unreachable(*_: object, **__: object) -> bool:
        raise redis.ConnectionError("Redis is away")

    monkeypatch.setattr(lock._lock, "extend", unreachable)
    with pytest.raises(StoreUnavailableError, match="cannot extend the job lock"):
        lock.extend()


@pytest.fixture
def context(redis_url: str, clock: ManualClock) -> Iterator[WorkerContext]:
    store = RedisSessionStore.from_url(
        redis_url, hot_ttl=timedelta(minutes=30), cold_tier="redis", clock=clock
    )
    # A lock of 1 s, renewed every third of a second: a real heartbeat, quick to wait on.
    ctx = WorkerContext.build(
        settings(redis_url=redis_url), clock=clock, sessions=store, lock_grace_seconds=1.0
    )
    yield ctx
    ctx.close()


def _heartbeats(job: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"hearth-heartbeat-{job}"]


def test_a_sweep_whose_lock_is_stolen_stops_and_says_so(
    context: WorkerContext, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = context.sessions
    save_sessions(store, 20)
    clock.advance(minutes=31)
    real_demote = store.demote_idle
    calls: list[int] = []

    def demote_while_the_lock_is_stolen(*, limit: int = 1000) -> int:
        calls.append(limit)
        if len(calls) == 2:
            context.redis.set(lock_key(jobs.DEMOTE), "thief", px=60_000)
            # The heartbeat's next beat finds the thief's token and ends the heartbeat.
            [heartbeat] = _heartbeats(jobs.DEMOTE)
            heartbeat.join(timeout=10)
            assert not heartbeat.is_alive(), "the heartbeat never noticed the theft"
        return real_demote(limit=limit)

    monkeypatch.setattr(store, "demote_idle", demote_while_the_lock_is_stolen)

    result = maintenance.demote(context, batch_size=5)

    assert calls == [5, 5]  # stopped at the check after the call during which it was stolen
    assert result["status"] == "lock_lost"
    assert (result["demoted"], result["complete"], result["lock_lost"]) == (10, False, True)
    assert context.redis.get(lock_key(jobs.DEMOTE)) == b"thief"
    last = jobs.last_runs(context.redis)[jobs.DEMOTE]
    assert last is not None
    assert last.status is jobs.RunStatus.LOCK_LOST
    assert last.result["demoted"] == 10
    stats = store.stats()
    assert (stats.hot_sessions, stats.cold_sessions) == (10, 10)


@pytest.mark.parametrize("fails", [False, True], ids=["returns", "raises"])
def test_the_heartbeat_ends_with_the_run(context: WorkerContext, fails: bool) -> None:
    seen: list[bool] = []
    errors: list[BaseException] = []

    def work(lock: JobLock) -> dict[str, Any]:
        seen.append(bool(_heartbeats("job")) and lock.held)
        if fails:
            raise RuntimeError("the work broke")
        return {}

    def holder() -> None:
        try:
            run_job(context, "job", work)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=holder)
    thread.start()
    thread.join(timeout=30)

    assert not thread.is_alive()
    assert seen == [True]  # the heartbeat ran while the work did...
    assert _heartbeats("job") == []  # ...and is gone with it
    assert len(errors) == int(fails)
    assert not context.redis.exists(lock_key("job"))


def _overwrite_with_another_type(client: redis.Redis, job: str) -> None:
    # The release script's GET then fails with WRONGTYPE: an error reply, not "try later".
    client.delete(lock_key(job))
    client.hset(lock_key(job), "field", "value")


def test_a_release_redis_refuses_is_logged_and_does_not_end_the_run(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    lock = JobLock(client, "job", ttl_seconds=30)
    assert lock.acquire()
    _overwrite_with_another_type(client, "job")
    with pytest.raises(StoreError) as refused:
        lock.release()
    assert not isinstance(refused.value, StoreUnavailableError)
    assert "cannot release the job lock" in str(refused.value)

    client.delete(lock_key("job"))
    held = JobLock(client, "job", ttl_seconds=30)
    assert held.acquire()
    _overwrite_with_another_type(client, "job")
    _release(held)  # logs, and returns: the run's own outcome stands
    assert "could not release the job lock" in caplog.text

"""The periodic-job lock: one holder at a time, an expiry, and only the holder releases."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from workers.keys import lock_key
from workers.locks import JobLock, remaining_seconds

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

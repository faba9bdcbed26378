"""Provider task deliveries counted in Redis: the rule of ``workers.deliveries``.

The counting script runs against the real test Redis with explicit times; the lost-worker
test (``test_provider_redelivery``) shows the rule on a real worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from workers import deliveries
from workers.deliveries import Verdict, delivery_key, record, verdict

pytestmark = pytest.mark.redis

T0 = 1_900_000_000.25
TTL = 7200


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    try:
        yield c
    finally:
        c.close()


def test_a_first_delivery_runs_and_keeps_its_time_and_a_ttl(client: redis.Redis) -> None:
    first = record(client, "t1", 0, now=T0, ttl=TTL)

    assert first == deliveries.Delivery(attempt=0, deliveries=1, lost=0, first_delivered_at=T0)
    assert verdict(first, 3) is Verdict.RUN
    assert 0 < client.ttl(delivery_key("t1")) <= TTL


def test_retries_are_new_attempts_not_lost_deliveries(client: redis.Redis) -> None:
    for attempt in range(6):
        delivery = record(client, "t2", attempt, now=T0 + attempt, ttl=TTL)
        assert delivery.deliveries == 1
        assert delivery.lost == 0
        assert delivery.first_delivered_at == T0
        assert verdict(delivery, 1) is Verdict.RUN


def test_redeliveries_count_as_lost_until_the_cap(client: redis.Redis) -> None:
    seen = [record(client, "t3", 0, now=T0 + i, ttl=TTL) for i in range(4)]

    assert [d.deliveries for d in seen] == [1, 2, 3, 4]
    assert [d.lost for d in seen] == [0, 1, 2, 3]
    assert [verdict(d, 3) for d in seen] == [Verdict.RUN] * 3 + [Verdict.GIVE_UP]
    assert all(d.first_delivered_at == T0 for d in seen)
    error = deliveries.give_up_error("hearth.providers.generate", "t3", seen[-1], 3)
    assert "delivered 4 times" in str(error)
    assert "lost 3 times" in str(error)


def test_lost_deliveries_add_up_across_retries(client: redis.Redis) -> None:
    record(client, "t4", 0, now=T0, ttl=TTL)
    assert record(client, "t4", 0, now=T0 + 1, ttl=TTL).lost == 1
    retried = record(client, "t4", 1, now=T0 + 2, ttl=TTL)
    assert (retried.deliveries, retried.lost) == (1, 1)
    assert verdict(retried, 2) is Verdict.RUN
    again = record(client, "t4", 1, now=T0 + 3, ttl=TTL)
    assert (again.deliveries, again.lost, again.total) == (2, 2, 4)
    assert verdict(again, 2) is Verdict.GIVE_UP


def test_an_older_attempt_after_a_newer_one_is_stale_and_counts_nothing(
    client: redis.Redis,
) -> None:
    record(client, "t5", 0, now=T0, ttl=TTL)
    record(client, "t5", 1, now=T0 + 1, ttl=TTL)

    stale = record(client, "t5", 0, now=T0 + 2, ttl=TTL)

    assert stale.stale
    assert verdict(stale, 3) is Verdict.STALE
    after = record(client, "t5", 1, now=T0 + 3, ttl=TTL)
    assert (after.deliveries, after.lost) == (2, 1)


def test_task_ids_are_counted_apart(client: redis.Redis) -> None:
    record(client, "a", 0, now=T0, ttl=TTL)
    other = record(client, "b", 0, now=T0 + 5, ttl=TTL)
    assert (other.deliveries, other.first_delivered_at) == (1, T0 + 5)


def test_ttl_outlives_the_deadline_and_the_visibility_timeout() -> None:
    assert deliveries.ttl_seconds(600.0, 3600.0) == 600 + 3600 + deliveries.TTL_MARGIN_SECONDS
    assert deliveries.ttl_seconds(0.5, 60.0) == 61 + deliveries.TTL_MARGIN_SECONDS

"""Results in a Redis database of their own, expiring; one exchange per queue; a failed
provider task seen as FAILURE by a client holding only the result backend."""

from __future__ import annotations

import pytest
import redis

from tests.integration.workers_support import BROKERS, broker_settings, running_worker, settings
from workers.app import with_redis_db
from workers.tasks import providers as tasks
from workers.tasks.failures import ProviderTaskError

pytestmark = [pytest.mark.celery, pytest.mark.redis]

RESULTS_DB = 13
EXPIRES = 600


def test_results_go_to_their_own_database_and_expire(redis_url: str) -> None:
    # No broker or result backend configured: both derive from the sessions Redis.
    app_settings = settings(
        redis_url=redis_url, result_redis_db=RESULTS_DB, result_expires_seconds=EXPIRES
    )
    with running_worker(app_settings):
        # No provider is configured: the task fails, and its failure is a result too.
        outcome = tasks.embed.delay("where does this go?")
        with pytest.raises(ProviderTaskError) as info:
            outcome.get(timeout=30)

    assert outcome.state == "FAILURE"
    assert info.value.error_type == "ProviderSettingsError"
    assert info.value.attempts == 1
    key = f"celery-task-meta-{outcome.id}"
    sessions = redis.Redis.from_url(redis_url)
    results = redis.Redis.from_url(with_redis_db(redis_url, RESULTS_DB))
    try:
        assert not sessions.exists(key)
        assert results.exists(key)
        assert EXPIRES - 60 < results.ttl(key) <= EXPIRES
        results.delete(key)
    finally:
        sessions.close()
        results.close()


@pytest.mark.parametrize("broker", BROKERS)
def test_each_queue_is_bound_to_an_exchange_of_its_own(broker: str, redis_server_url: str) -> None:
    with running_worker(broker_settings(broker, redis_server_url)) as app:
        replies = app.control.inspect(timeout=10).active_queues()

    assert replies is not None
    [queues] = replies.values()
    assert {(q["name"], q["exchange"]["name"], q["exchange"]["type"]) for q in queues} == {
        ("maintenance", "maintenance", "direct"),
        ("providers", "providers", "direct"),
    }

"""The workers' bookkeeping on a Redis Cluster: job locks and job records work with a
cluster client, whose keys live in several slots."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.cluster import RedisCluster, key_slot

from stores.sessions.clients import from_url
from tests.cluster_support import redis_cluster_nodes, redis_cluster_url  # noqa: F401
from workers import jobs
from workers.keys import JOB_STREAM, job_key, lock_key
from workers.locks import JobLock, remaining_seconds

pytestmark = [pytest.mark.redis, pytest.mark.cluster]


@pytest.fixture
def client(redis_cluster_url: str) -> Iterator[RedisCluster]:  # noqa: F811
    client = from_url(redis_cluster_url)
    assert isinstance(client, RedisCluster)
    yield client
    client.close()


def test_a_job_lock_has_one_holder_and_an_expiry(client: RedisCluster) -> None:
    first = JobLock(client, jobs.DEMOTE, ttl_seconds=30)
    second = JobLock(client, jobs.DEMOTE, ttl_seconds=30)
    assert first.acquire()
    assert not second.acquire()
    assert first.extend(60)
    remaining = remaining_seconds(client, jobs.DEMOTE)
    assert remaining is not None
    assert 30 < remaining <= 60
    assert first.release()
    assert remaining_seconds(client, jobs.DEMOTE) is None
    assert second.acquire()
    assert second.release()


def test_job_runs_are_recorded_and_read_back_across_slots(client: RedisCluster) -> None:
    # The records are spread over slots: a multi-key command would be refused.
    slots = {key_slot(job_key(job).encode()) for job in jobs.JOBS} | {
        key_slot(JOB_STREAM.encode()),
        key_slot(lock_key(jobs.DEMOTE).encode()),
    }
    assert len(slots) > 1
    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert jobs.latest_stream_id(client) == "0-0"
    ids = []
    for i, job in enumerate((jobs.DEMOTE, jobs.PURGE, jobs.DEMOTE)):
        run = jobs.JobRun(
            job=job,
            status=jobs.RunStatus.OK,
            started_at=start + timedelta(minutes=i),
            finished_at=start + timedelta(minutes=i, seconds=1),
            result={"moved": i},
        )
        ids.append(jobs.record(client, run))
    last = jobs.last_runs(client)
    assert last[jobs.SCHEMA_CHECK] is None
    assert last[jobs.PURGE] is not None
    assert last[jobs.PURGE].result == {"moved": 1}
    assert last[jobs.DEMOTE] is not None
    assert last[jobs.DEMOTE].result == {"moved": 2}
    assert jobs.latest_stream_id(client) == ids[-1]
    tail = jobs.read_new(client, ids[0], block_ms=0)
    assert [entry_id for entry_id, _ in tail] == ids[1:]


def test_a_worker_context_on_a_cluster_url_keeps_its_bookkeeping_there(
    redis_cluster_url: str,  # noqa: F811
) -> None:
    from workers.context import WorkerContext
    from workers.settings import Settings
    from workers.tasks.periodic import run_job

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_cluster_url,
        broker_url="memory://",
        session_cold_tier="redis",
    )
    context = WorkerContext.build(settings)
    try:
        assert isinstance(context.redis, RedisCluster)
        result = run_job(context, jobs.SCENARIO_MIGRATION, lambda _lock: {"marked": 3})
        last = jobs.last_runs(context.redis)[jobs.SCENARIO_MIGRATION]
    finally:
        context.close()
    assert result["status"] == "ok"
    assert last is not None
    assert last.result == {"marked": 3}


def test_status_reads_the_memory_of_every_master(client: RedisCluster) -> None:
    from workers.cli.status import redis_memory

    memory = redis_memory(client)
    assert "error" not in memory
    per_node = client.info("memory", target_nodes=RedisCluster.PRIMARIES)
    assert len(per_node) == 3
    assert memory["used_memory"] >= max(int(info["used_memory"]) for info in per_node.values())
    assert memory["maxmemory_policy"] is not None

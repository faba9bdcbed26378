"""What each periodic job did last, kept in Redis for ``hearth status`` and ``hearth up``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from redis.cluster import RedisCluster

from stores.driver_errors import redis_translated
from stores.sessions.clients import Client
from workers.keys import JOB_STREAM, JOB_STREAM_MAXLEN, job_key

DEMOTE = "demote-idle-sessions"
PURGE = "purge-expired-sessions"
SCHEMA_CHECK = "schema-check"
SCENARIO_MIGRATION = "scenario-migration-sweep"
EMBEDDING_BACKFILL = "embedding-backfill"
TENANT_INDEXES = "tenant-vector-indexes"

JOBS: tuple[str, ...] = (
    DEMOTE,
    PURGE,
    SCHEMA_CHECK,
    SCENARIO_MIGRATION,
    EMBEDDING_BACKFILL,
    TENANT_INDEXES,
)
"""Every periodic job, in the order ``hearth status`` shows them."""

TASK_NAMES: dict[str, str] = {
    DEMOTE: "hearth.maintenance.demote_idle_sessions",
    PURGE: "hearth.maintenance.purge_expired_sessions",
    SCHEMA_CHECK: "hearth.maintenance.check_schema",
    SCENARIO_MIGRATION: "hearth.maintenance.mark_scenario_migrations",
    EMBEDDING_BACKFILL: "hearth.providers.embedding_backfill",
    TENANT_INDEXES: "hearth.maintenance.index_large_tenants",
}
"""The Celery task of each job; ``hearth.maintenance.*`` and ``hearth.providers.*`` are routed
to the queues of those names."""

SHARDED: tuple[str, ...] = (DEMOTE, PURGE)
"""The jobs whose work is split by shard (see ``stores.sessions.shards``): their beat task
sends one task per shard, as a Celery group, each run under a lock of its own."""

SHARD_TASK_NAMES: dict[str, str] = {
    DEMOTE: "hearth.maintenance.demote_idle_shard",
    PURGE: "hearth.maintenance.purge_expired_shard",
}
"""The Celery task that sweeps one shard of each sharded job."""


def run_name(job: str, shard: int | None = None) -> str:
    """The name a run's lock and last-run record go by: the job's, or for one shard of it,
    ``<job>:shard-<index>`` (shards of one job lock apart, so they run side by side)."""
    return job if shard is None else f"{job}:shard-{shard}"


class RunStatus(StrEnum):
    """How a run of a periodic job ended."""

    OK = "ok"
    SKIPPED = "skipped"
    """Another run held the job's lock; this one did nothing."""
    FAILED = "failed"
    LOCK_LOST = "lock_lost"
    """The run's lock expired or was taken while it ran; it stopped at its next check."""


class JobRun(BaseModel):
    """One run of a periodic job: when, how it ended, and the counts it returned."""

    # Fields a newer worker adds are ignored: during a rolling deploy an older ``hearth
    # status`` still reads the records the new workers write.
    model_config = ConfigDict(extra="ignore")

    job: str
    status: RunStatus
    started_at: AwareDatetime
    finished_at: AwareDatetime
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    task_id: str | None = None
    worker: str | None = None
    trigger: str = "schedule"
    shard: int | None = None
    """The shard this run swept, for one shard of a sharded job (None: the whole job)."""
    shards: int | None = None
    """How many shards its job was split into, beside ``shard``."""

    @property
    def name(self) -> str:
        """The run's name: its job's, or its job's and shard's (:func:`run_name`)."""
        return run_name(self.job, self.shard)

    @property
    def duration_seconds(self) -> float:
        """Wall time of the run."""
        return (self.finished_at - self.started_at).total_seconds()


def record(client: Client, run: JobRun) -> str:
    """Keep ``run`` as its job's last run and append it to the stream; returns the stream id.

    On a Redis Cluster the two keys are in different slots, so they are two writes rather
    than one transaction: a reader never needs them to agree (the stream is a log, the key
    its latest entry)."""
    data = run.model_dump_json()
    with redis_translated(f"cannot record the {run.job} run"):
        pipe = client.pipeline(transaction=not isinstance(client, RedisCluster))
        pipe.set(job_key(run.name), data)
        pipe.xadd(JOB_STREAM, {"run": data}, maxlen=JOB_STREAM_MAXLEN, approximate=True)
        results = pipe.execute()
    stream_id = results[1]
    return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)


def last_runs(client: Client, jobs: tuple[str, ...] = JOBS) -> dict[str, JobRun | None]:
    """The last run of each job, or of each run name (:func:`run_name`), None for one that
    never ran."""
    names = [job_key(job) for job in jobs]
    with redis_translated("cannot read job runs"):
        if isinstance(client, RedisCluster):
            # One GET per key, not MGET: on a cluster the keys are in many slots.
            pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
            for name in names:
                pipe.get(name)
            values = pipe.execute()
        else:
            values = client.mget(names)
    return {
        job: JobRun.model_validate_json(value) if value else None
        for job, value in zip(jobs, values, strict=True)
    }


def latest_stream_id(client: Client) -> str:
    """The id of the newest run in the stream ("0-0" when empty), to tail from."""
    with redis_translated("cannot read job runs"):
        entries = client.xrevrange(JOB_STREAM, count=1)
    if not entries:
        return "0-0"
    entry_id = entries[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def read_new(
    client: Client, after: str, *, block_ms: int = 1000, count: int = 100
) -> list[tuple[str, JobRun]]:
    """Runs recorded after stream id ``after``, waiting up to ``block_ms`` for the first."""
    with redis_translated("cannot read job runs"):
        answer = client.xread({JOB_STREAM: after}, count=count, block=block_ms)
    runs: list[tuple[str, JobRun]] = []
    streams: list[Any] = list(answer or [])
    for _stream, entries in streams:
        for entry_id, fields in entries:
            raw = fields.get(b"run") or fields.get("run")
            if raw is None:
                continue
            runs.append((_text(entry_id), JobRun.model_validate_json(raw)))
    return runs


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

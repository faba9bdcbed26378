"""The periodic maintenance tasks: demotion sweep, max-age purge, schema check, scenario
migration sweep.

Each is idempotent (running twice does the work once), so it is acknowledged late and
rejected back to the queue when its worker dies: a sweep killed mid-batch is simply run
again, and the store's own ordering guarantees that the interrupted batch lost nothing.
The plain functions (``demote``, ``purge``, ...) are the task bodies; ``hearth sweep`` and
the benchmark call them directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from celery import Task, group, shared_task

from stores.sessions import Shard
from workers import jobs, schema_guard, sweeps
from workers.context import WorkerContext, get_context
from workers.locks import JobLock
from workers.tasks.periodic import IDEMPOTENT, RunInfo, run_job


def demote(
    context: WorkerContext,
    *,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    info: RunInfo | None = None,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """Run the demotion sweep under its lock: of every tenant, or of one ``shard`` under
    that shard's lock."""
    batch = batch_size or context.settings.sweep_batch_size
    budget = time_budget_seconds or context.settings.sweep_time_budget_seconds

    def work(lock: JobLock) -> dict[str, Any]:
        before = context.sessions.unmovable_counts()
        result = sweeps.demote_idle(
            context.sessions,
            batch_size=batch,
            time_budget_seconds=budget,
            lock_lost=lambda: lock.lost,
            shard=shard,
        )
        after = context.sessions.unmovable_counts()
        # The store counts for its whole life; this run's share is the difference (a worker
        # process runs one sweep at a time).
        left = {reason: n - before.get(reason, 0) for reason, n in after.items()}
        return {"demoted": result.processed, **left, **_shard_of(shard), **_counts(result)}

    return run_job(context, jobs.DEMOTE, work, info=_with_shard(info, shard))


def purge(
    context: WorkerContext,
    *,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    info: RunInfo | None = None,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """Run the max-age purge under its lock: of every tenant, or of one ``shard`` under that
    shard's lock."""
    batch = batch_size or context.settings.sweep_batch_size
    budget = time_budget_seconds or context.settings.sweep_time_budget_seconds

    def work(lock: JobLock) -> dict[str, Any]:
        result = sweeps.purge_expired(
            context.sessions,
            batch_size=batch,
            time_budget_seconds=budget,
            lock_lost=lambda: lock.lost,
            shard=shard,
        )
        return {"purged": result.processed, **_shard_of(shard), **_counts(result)}

    return run_job(context, jobs.PURGE, work, info=_with_shard(info, shard))


SWEEPS: dict[str, Callable[..., dict[str, Any]]] = {jobs.DEMOTE: demote, jobs.PURGE: purge}
"""The body of each sharded job, by job name."""


def dispatch(
    context: WorkerContext,
    job: str,
    send: Callable[[list[Shard]], str | None],
    *,
    info: RunInfo | None = None,
) -> dict[str, Any]:
    """Send one task per shard of ``job`` (``send`` them, as one Celery group; it returns
    the group's id), under the job's own lock, so that two beats or a redelivered message
    send them at most once at a time. The run's record says how many shards it sent; each
    shard's run keeps its own record."""
    shards = Shard.split(context.settings.sweep_shards)

    def work(_lock: JobLock) -> dict[str, Any]:
        group_id = send(shards)
        return {"shards_sent": len(shards), "group_id": group_id}

    return run_job(context, job, work, info=info)


def run_shards(
    context: WorkerContext,
    job: str,
    *,
    only: int | None = None,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    info: RunInfo | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Sweep the shards of ``job`` here, one after another (or shard ``only``), each under
    its own lock and recorded as a scheduled shard run is; ``progress`` gets each result as
    it ends. With one shard configured, that is the whole sweep under the job's lock."""
    count = context.settings.sweep_shards
    if only is not None and not 0 <= only < count:
        raise ValueError(f"shard must be 0 to {count - 1} (HEARTH_SWEEP_SHARDS={count})")
    chosen = [None] if count == 1 else Shard.split(count)
    if only is not None and count > 1:
        chosen = [Shard(only, count)]
    results = []
    for shard in chosen:
        result = SWEEPS[job](
            context,
            batch_size=batch_size,
            time_budget_seconds=time_budget_seconds,
            info=info,
            shard=shard,
        )
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def check_schema(context: WorkerContext, *, info: RunInfo | None = None) -> dict[str, Any]:
    """Compare the database's schema with head and keep the answer for ``hearth status``."""

    def work(_lock: JobLock) -> dict[str, Any]:
        url = context.settings.database_url
        if not url:
            return {"state": "not-configured", "message": "no database configured"}
        return schema_guard.as_result(schema_guard.check(url))

    return run_job(context, jobs.SCHEMA_CHECK, work, info=info)


def mark_scenario_migrations(
    context: WorkerContext,
    *,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    info: RunInfo | None = None,
) -> dict[str, Any]:
    """Mark sessions still on the old version of each deployed plan, once each."""
    batch = batch_size or context.settings.sweep_batch_size
    budget = time_budget_seconds or context.settings.sweep_time_budget_seconds

    def work(lock: JobLock) -> dict[str, Any]:
        result = sweeps.mark_scenario_migrations(
            context.config,
            context.sessions,
            batch_size=batch,
            time_budget_seconds=budget,
            lock_lost=lambda: lock.lost,
        )
        return {"marked": result.processed, **_counts(result)}

    return run_job(context, jobs.SCENARIO_MIGRATION, work, info=info)


def _with_shard(info: RunInfo | None, shard: Shard | None) -> RunInfo | None:
    if shard is None:
        return info
    return replace(info or RunInfo(), shard=shard)


def _shard_of(shard: Shard | None) -> dict[str, Any]:
    return {} if shard is None else {"shard": shard.index, "shards": shard.count}


def _counts(result: sweeps.SweepResult) -> dict[str, Any]:
    data = result.as_dict()
    data.pop("processed")
    return data


def _run_batched(
    task: Task[Any, Any],
    body: Callable[..., dict[str, Any]],
    batch_size: int | None,
    time_budget_seconds: float | None,
    trigger: str,
    **scope: Any,
) -> dict[str, Any]:
    """``body`` on this process's context, with the task's limits and run info."""
    return body(
        get_context(),
        batch_size=batch_size,
        time_budget_seconds=time_budget_seconds,
        info=RunInfo.of_task(task, trigger),
        **scope,
    )


def _sweep_or_fan_out(
    task: Task[Any, Any],
    job: str,
    batch_size: int | None,
    time_budget_seconds: float | None,
    trigger: str,
) -> dict[str, Any]:
    """The whole sweep here when one shard is configured (``HEARTH_SWEEP_SHARDS=1``), else
    a group of one task per shard, for any worker to take."""
    context = get_context()
    if context.settings.sweep_shards == 1:
        return _run_batched(task, SWEEPS[job], batch_size, time_budget_seconds, trigger)
    # A shard task not started within one interval is dropped, as the beat's own message
    # is: the next dispatch sends it again.
    interval = {
        jobs.DEMOTE: context.settings.demote_interval_seconds,
        jobs.PURGE: context.settings.purge_interval_seconds,
    }[job]

    def send(shards: list[Shard]) -> str | None:
        signatures = [
            task.app.signature(
                jobs.SHARD_TASK_NAMES[job],
                kwargs={
                    "index": shard.index,
                    "count": shard.count,
                    "batch_size": batch_size,
                    "time_budget_seconds": time_budget_seconds,
                    "trigger": trigger,
                },
                expires=interval,
            )
            for shard in shards
        ]
        sent = group(signatures).apply_async()
        return str(sent.id) if sent.id else None

    return dispatch(context, job, send, info=RunInfo.of_task(task, trigger))


@shared_task(name=jobs.TASK_NAMES[jobs.DEMOTE], **IDEMPOTENT)
def demote_idle_sessions(
    self: Task[Any, Any],
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """Demotion sweep: hot sessions idle for ``hot_ttl`` move to the cold tier (sent as one
    task per shard when the sweep is sharded)."""
    return _sweep_or_fan_out(self, jobs.DEMOTE, batch_size, time_budget_seconds, trigger)


@shared_task(name=jobs.TASK_NAMES[jobs.PURGE], **IDEMPOTENT)
def purge_expired_sessions(
    self: Task[Any, Any],
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """Max-age purge: sessions older than ``max_age`` leave every tier and index (sent as
    one task per shard when the sweep is sharded)."""
    return _sweep_or_fan_out(self, jobs.PURGE, batch_size, time_budget_seconds, trigger)


@shared_task(name=jobs.SHARD_TASK_NAMES[jobs.DEMOTE], **IDEMPOTENT)
def demote_idle_shard(
    self: Task[Any, Any],
    index: int,
    count: int,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """One shard of the demotion sweep, under the shard's lock."""
    shard = Shard(index, count)
    return _run_batched(self, demote, batch_size, time_budget_seconds, trigger, shard=shard)


@shared_task(name=jobs.SHARD_TASK_NAMES[jobs.PURGE], **IDEMPOTENT)
def purge_expired_shard(
    self: Task[Any, Any],
    index: int,
    count: int,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """One shard of the max-age purge, under the shard's lock."""
    shard = Shard(index, count)
    return _run_batched(self, purge, batch_size, time_budget_seconds, trigger, shard=shard)


@shared_task(name=jobs.TASK_NAMES[jobs.SCHEMA_CHECK], **IDEMPOTENT)
def check_schema_task(self: Task[Any, Any], trigger: str = "schedule") -> dict[str, Any]:
    """Schema migration check: current, behind, ahead, uninitialized or unreachable."""
    return check_schema(get_context(), info=RunInfo.of_task(self, trigger))


@shared_task(name=jobs.TASK_NAMES[jobs.SCENARIO_MIGRATION], **IDEMPOTENT)
def mark_scenario_migrations_task(
    self: Task[Any, Any],
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """Scenario migration sweep: sessions on a deployed plan's old version get marked."""
    return _run_batched(self, mark_scenario_migrations, batch_size, time_budget_seconds, trigger)

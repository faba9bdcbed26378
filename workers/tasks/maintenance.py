"""The periodic maintenance tasks: demotion sweep, max-age purge, schema check, scenario
migration sweep.

Each is idempotent (running twice does the work once), so it is acknowledged late and
rejected back to the queue when its worker dies: a sweep killed mid-batch is simply run
again, and the store's own ordering guarantees that the interrupted batch lost nothing.
The plain functions (``demote``, ``purge``, ...) are the task bodies; ``hearth sweep`` and
the benchmark call them directly.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from workers import jobs, schema_guard, sweeps
from workers.context import WorkerContext, get_context
from workers.locks import JobLock
from workers.tasks.periodic import RunInfo, run_job

IDEMPOTENT: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": False,
}


def demote(
    context: WorkerContext,
    *,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    info: RunInfo | None = None,
) -> dict[str, Any]:
    """Run the demotion sweep under its lock."""
    batch = batch_size or context.settings.sweep_batch_size
    budget = time_budget_seconds or context.settings.sweep_time_budget_seconds

    def work(lock: JobLock) -> dict[str, Any]:
        result = sweeps.demote_idle(
            context.sessions,
            batch_size=batch,
            time_budget_seconds=budget,
            lock_lost=lambda: lock.lost,
        )
        return {"demoted": result.processed, **_counts(result)}

    return run_job(context, jobs.DEMOTE, work, info=info)


def purge(
    context: WorkerContext,
    *,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    info: RunInfo | None = None,
) -> dict[str, Any]:
    """Run the max-age purge under its lock."""
    batch = batch_size or context.settings.sweep_batch_size
    budget = time_budget_seconds or context.settings.sweep_time_budget_seconds

    def work(lock: JobLock) -> dict[str, Any]:
        result = sweeps.purge_expired(
            context.sessions,
            batch_size=batch,
            time_budget_seconds=budget,
            lock_lost=lambda: lock.lost,
        )
        return {"purged": result.processed, **_counts(result)}

    return run_job(context, jobs.PURGE, work, info=info)


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


def _counts(result: sweeps.SweepResult) -> dict[str, Any]:
    data = result.as_dict()
    data.pop("processed")
    return data


def _info(task: Task[Any, Any], trigger: str) -> RunInfo:
    return RunInfo(
        task_id=task.request.id, worker=getattr(task.request, "hostname", None), trigger=trigger
    )


@shared_task(name=jobs.TASK_NAMES[jobs.DEMOTE], **IDEMPOTENT)
def demote_idle_sessions(
    self: Task[Any, Any],
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """Demotion sweep: hot sessions idle for ``hot_ttl`` move to the cold tier."""
    return demote(
        get_context(),
        batch_size=batch_size,
        time_budget_seconds=time_budget_seconds,
        info=_info(self, trigger),
    )


@shared_task(name=jobs.TASK_NAMES[jobs.PURGE], **IDEMPOTENT)
def purge_expired_sessions(
    self: Task[Any, Any],
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """Max-age purge: sessions older than ``max_age`` leave every tier and index."""
    return purge(
        get_context(),
        batch_size=batch_size,
        time_budget_seconds=time_budget_seconds,
        info=_info(self, trigger),
    )


@shared_task(name=jobs.TASK_NAMES[jobs.SCHEMA_CHECK], **IDEMPOTENT)
def check_schema_task(self: Task[Any, Any], trigger: str = "schedule") -> dict[str, Any]:
    """Schema migration check: current, behind, ahead, uninitialized or unreachable."""
    return check_schema(get_context(), info=_info(self, trigger))


@shared_task(name=jobs.TASK_NAMES[jobs.SCENARIO_MIGRATION], **IDEMPOTENT)
def mark_scenario_migrations_task(
    self: Task[Any, Any],
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """Scenario migration sweep: sessions on a deployed plan's old version get marked."""
    return mark_scenario_migrations(
        get_context(),
        batch_size=batch_size,
        time_budget_seconds=time_budget_seconds,
        info=_info(self, trigger),
    )

"""Running a periodic job: take its lock, do the work, record and log the outcome.

Every periodic task goes through :func:`run_job`, so each one holds a lock with an expiry,
renewed by a heartbeat while it runs (two beats or a slow run never overlap, and a crashed
holder blocks the next run only for the short expiry), returns JSON counts, and leaves its
last run in Redis for ``hearth status`` and ``hearth up`` and in the ``hearth_sweep_*``
metrics (:func:`workers.metrics.families.observe_run`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stores.common.clock import utc_now
from stores.errors import StoreError
from stores.sessions.shards import Shard
from workers import jobs
from workers.context import WorkerContext
from workers.locks import JobLock, remaining_seconds
from workers.metrics import families as metrics

logger = logging.getLogger("hearth.jobs")

IDEMPOTENT: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": False,
}
"""Celery options of every idempotent task (the periodic ones, and the provider tasks on top
of their own): acknowledged late and rejected back to the queue when its worker dies."""


@dataclass(frozen=True)
class RunInfo:
    """Who started a run: the Celery task id and worker, and what triggered it."""

    task_id: str | None = None
    worker: str | None = None
    trigger: str = "schedule"
    shard: Shard | None = None
    """The shard the run sweeps, for one shard of a sharded job."""

    @classmethod
    def of_task(cls, task: Any, trigger: str) -> RunInfo:
        """The run a bound Celery task is making: its id, its worker, and ``trigger``."""
        request = task.request
        return cls(task_id=request.id, worker=getattr(request, "hostname", None), trigger=trigger)

    @property
    def shard_index(self) -> int | None:
        """The index of the run's shard (None for a run of the whole job)."""
        return None if self.shard is None else self.shard.index


def run_job(
    context: WorkerContext,
    job: str,
    work: Callable[[JobLock], dict[str, Any]],
    *,
    lock_ttl_seconds: float | None = None,
    info: RunInfo | None = None,
) -> dict[str, Any]:
    """Run ``work(lock)`` under the job's lock; returns ``{"job", "status", **counts}``.

    A run of one shard of a sharded job (``info.shard``) takes the lock and keeps the
    record of that shard (``jobs.run_name``), so the shards of one job run side by side;
    ``job`` stays the job's name.

    The lock expires ``lock_ttl_seconds`` (default: the context's ``lock_grace_seconds``)
    after its last renewal; a heartbeat thread renews it every third of that until ``work``
    returns or raises. ``work`` checks ``lock.lost`` between its store calls and stops once
    it is set.

    A run that finds the lock taken does nothing and returns status ``skipped``. A run whose
    lock was lost while it ran returns status ``lock_lost`` with the counts it reached, and
    leaves the key alone (it may be another run's by then). A failing run is recorded as
    ``failed`` and its exception propagates (Celery marks the task failed).
    """
    info = info or RunInfo()
    ttl = context.lock_grace_seconds if lock_ttl_seconds is None else lock_ttl_seconds
    lock = JobLock(context.redis, jobs.run_name(job, info.shard_index), ttl)
    started_at = utc_now()
    started = time.monotonic()
    if not lock.acquire():
        result: dict[str, Any] = {"reason": "another run holds the lock"}
        left = remaining_seconds(context.redis, lock.job)
        if left is not None and not math.isinf(left):
            result["lock_expires_in"] = round(left, 3)
        _record(context, job, jobs.RunStatus.SKIPPED, started_at, info, result=result)
        logger.info("%s skipped: another run holds the lock", job)
        return {"job": job, "status": jobs.RunStatus.SKIPPED.value, **result}
    try:
        with lock.heartbeat():
            result = work(lock)
        lost = lock.lost
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        _record(context, job, jobs.RunStatus.FAILED, started_at, info, error=error)
        logger.exception("%s failed after %.2f s", job, time.monotonic() - started)
        raise
    finally:
        _release(lock)
    elapsed = time.monotonic() - started
    if lost:
        _record(context, job, jobs.RunStatus.LOCK_LOST, started_at, info, result=result)
        logger.warning(
            "%s lost its lock and stopped after %.2f s: %s", job, elapsed, _summary(result)
        )
        return {"job": job, "status": jobs.RunStatus.LOCK_LOST.value, **result}
    _record(context, job, jobs.RunStatus.OK, started_at, info, result=result)
    logger.info("%s done in %.2f s: %s", job, elapsed, _summary(result))
    return {"job": job, "status": jobs.RunStatus.OK.value, **result}


def _release(lock: JobLock) -> None:
    try:
        lock.release()
    except StoreError:
        # The lock expires by itself shortly; failing here would hide how the work ended.
        logger.warning("could not release the %s lock", lock.job, exc_info=True)


def _summary(result: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in result.items() if not isinstance(v, list | dict))


def _record(
    context: WorkerContext,
    job: str,
    status: jobs.RunStatus,
    started_at: datetime,
    info: RunInfo,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    finished_at = utc_now()
    metrics.observe_run(job, status, result, (finished_at - started_at).total_seconds())
    run = jobs.JobRun(
        job=job,
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        result=result or {},
        error=error,
        task_id=info.task_id,
        worker=info.worker,
        trigger=info.trigger,
        shard=info.shard_index,
        shards=None if info.shard is None else info.shard.count,
    )
    try:
        jobs.record(context.redis, run)
    except Exception:
        # The work is done (or failed on its own); a lost record must not turn it into an error.
        logger.warning("could not record the %s run", job, exc_info=True)

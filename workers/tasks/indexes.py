"""The periodic job that gives large tenants vector indexes of their own.

``tenant-vector-indexes`` (hourly by default) runs :func:`stores.postgres.tenant_indexes.
apply_changes` with the policy in the settings (``HEARTH_TENANT_INDEX_MIN_ROWS``,
``..._MIN_SHARE``, ``..._KEEP_SHARE``): a tenant that crossed the threshold gets its index
built ``CONCURRENTLY`` (writes and searches go on meanwhile), one that shrank below the keep
share loses it. ``hearth db tenant-indexes`` shows the same plan and, with ``--apply``, makes
it by hand.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from workers import jobs
from workers.context import WorkerContext, get_context
from workers.locks import JobLock
from workers.tasks.periodic import IDEMPOTENT, RunInfo, run_job


def index_large_tenants(context: WorkerContext, *, info: RunInfo | None = None) -> dict[str, Any]:
    """Create and drop per-tenant vector indexes so that exactly the large tenants have one."""
    from stores.postgres.engine import create_engine
    from stores.postgres.tenant_indexes import TenantIndexPolicy, apply_changes

    settings = context.settings
    policy = TenantIndexPolicy(
        min_rows=settings.tenant_index_min_rows,
        min_share=settings.tenant_index_min_share,
        keep_share=settings.tenant_index_keep_share,
    )

    def work(_lock: JobLock) -> dict[str, Any]:
        if not settings.database_url:
            return {"state": "not-configured", "message": "no database configured"}
        # An engine of its own, one connection: a build holds it for minutes, and must not
        # take a connection the stores' pools serve searches from.
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        try:
            changes = apply_changes(engine, policy, build_memory=settings.tenant_index_build_memory)
        finally:
            engine.dispose()
        if changes is None:
            return {"state": "busy", "message": "another run is changing the tenant indexes"}
        return {
            "created": [c.index for c in changes if c.action == "create"],
            "dropped": [c.index for c in changes if c.action == "drop"],
        }

    # A build may run long: the job lock is renewed by run_job's heartbeat all along.
    return run_job(context, jobs.TENANT_INDEXES, work, info=info)


@shared_task(name=jobs.TASK_NAMES[jobs.TENANT_INDEXES], **IDEMPOTENT)
def index_large_tenants_task(self: Task[Any, Any], trigger: str = "schedule") -> dict[str, Any]:
    """Per-tenant vector indexes: built for tenants holding a large share, dropped below it."""
    return index_large_tenants(get_context(), info=RunInfo.of_task(self, trigger))

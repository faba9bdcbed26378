"""The periodic jobs of hearth and how often they run, built from settings.

- ``demote-idle-sessions`` (every 60 s): idle hot sessions move to the cold tier;
- ``purge-expired-sessions`` (hourly): sessions past the maximum age leave every tier;
- ``schema-check`` (every 10 min, and at worker start): the schema against this code's head;
- ``scenario-migration-sweep`` (every 5 min): sessions of deployed migration plans get marked;
- ``embedding-backfill`` (every 10 min, when the provider tasks exist): missing embeddings;
- ``tenant-vector-indexes`` (hourly): vector indexes of their own for tenants holding a large
  share of a table (``hearth db tenant-indexes`` shows them).

Every entry expires after one interval: a message no worker picked up before the next one
was sent is dropped rather than piling up behind it. Run exactly one beat.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import workers
from workers import jobs
from workers.routing import MAINTENANCE_QUEUE, PROVIDERS_QUEUE, queue_of
from workers.settings import Settings, get_settings

__all__ = [
    "MAINTENANCE_QUEUE",
    "PROVIDERS_QUEUE",
    "build_schedule",
    "provider_tasks_available",
    "queue_of",
]


def _entry(job: str, interval_seconds: float) -> dict[str, Any]:
    task = jobs.TASK_NAMES[job]
    return {
        "task": task,
        "schedule": timedelta(seconds=interval_seconds),
        "options": {"expires": float(interval_seconds), "queue": queue_of(task)},
    }


def provider_tasks_available() -> bool:
    """Whether this build carries the provider tasks (and so the embedding backfill).

    Looks for the files rather than importing them: this runs while the Celery app module is
    being imported, before the task modules should be.
    """
    tasks_dir = Path(workers.__file__).resolve().parent / "tasks"
    return any((tasks_dir / name).is_file() for name in ("providers.py", "backfill.py"))


def build_schedule(
    settings: Settings | None = None, *, include_backfill: bool | None = None
) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: job name -> task, interval and options."""
    s = settings or get_settings()
    schedule = {
        jobs.DEMOTE: _entry(jobs.DEMOTE, s.demote_interval_seconds),
        jobs.PURGE: _entry(jobs.PURGE, s.purge_interval_seconds),
        jobs.SCHEMA_CHECK: _entry(jobs.SCHEMA_CHECK, s.migration_check_interval_seconds),
        jobs.SCENARIO_MIGRATION: _entry(
            jobs.SCENARIO_MIGRATION, s.scenario_migration_interval_seconds
        ),
        jobs.TENANT_INDEXES: _entry(jobs.TENANT_INDEXES, s.tenant_index_interval_seconds),
    }
    if include_backfill is None:
        include_backfill = provider_tasks_available()
    if include_backfill:
        schedule[jobs.EMBEDDING_BACKFILL] = _entry(
            jobs.EMBEDDING_BACKFILL, s.embedding_backfill_interval_seconds
        )
    return schedule

"""The maintenance work itself, free of Celery: bounded batches under a time budget.

The tasks, ``hearth sweep`` and the benchmark call these, so that all three measure and do
the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from stores.config import ConfigStore
from stores.sessions import PendingMigration, SessionStore


@dataclass
class SweepResult:
    """What one sweep did: how many items moved, in how many batches, and whether it finished.

    ``complete`` is False when the time budget ran out while full batches were still coming:
    the next run goes on from there.
    """

    processed: int = 0
    batches: int = 0
    complete: bool = True
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the task's result)."""
        data = asdict(self)
        extra = data.pop("extra")
        data["seconds"] = round(self.seconds, 4)
        data.update(extra)
        return data


def run_batches(
    step: Callable[[int], int],
    *,
    batch_size: int,
    time_budget_seconds: float,
    monotonic: Callable[[], float] = time.monotonic,
    on_batch: Callable[[int], None] | None = None,
) -> SweepResult:
    """Call ``step(batch_size)`` until it returns less than a full batch or the budget is spent.

    At least one batch always runs, so a tiny budget still makes progress.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    start = monotonic()
    result = SweepResult()
    while True:
        moved = step(batch_size)
        result.processed += moved
        result.batches += 1
        if on_batch is not None:
            on_batch(moved)
        if moved < batch_size:
            result.complete = True
            break
        if monotonic() - start >= time_budget_seconds:
            result.complete = False
            break
    result.seconds = monotonic() - start
    return result


def demote_idle(
    store: SessionStore,
    *,
    batch_size: int,
    time_budget_seconds: float,
    on_batch: Callable[[int], None] | None = None,
) -> SweepResult:
    """Move idle hot sessions to the cold tier, batch by batch."""
    return run_batches(
        lambda limit: store.demote_idle(limit=limit),
        batch_size=batch_size,
        time_budget_seconds=time_budget_seconds,
        on_batch=on_batch,
    )


def purge_expired(
    store: SessionStore,
    *,
    batch_size: int,
    time_budget_seconds: float,
    on_batch: Callable[[int], None] | None = None,
) -> SweepResult:
    """Remove sessions older than the maximum age from every tier, batch by batch."""
    return run_batches(
        lambda limit: store.purge_expired(limit=limit),
        batch_size=batch_size,
        time_budget_seconds=time_budget_seconds,
        on_batch=on_batch,
    )


PLAN_PAGE_SIZE = 100


def mark_scenario_migrations(
    config: ConfigStore,
    sessions: SessionStore,
    *,
    batch_size: int,
    time_budget_seconds: float,
    monotonic: Callable[[], float] = time.monotonic,
) -> SweepResult:
    """Give every session still on the old version of a deployed plan its pending migration.

    Plans are visited in ``(tenant_id, id)`` order across tenants. The store skips sessions
    that already carry a pending migration, so a session is marked once however many runs
    (or overlapping ones) visit its plan; a run cut short by the budget is finished by the next.
    """
    start = monotonic()
    result = SweepResult()
    plans = 0
    cursor: str | None = None
    out_of_time = False
    while not out_of_time:
        page = config.list_deployed_migration_plans(limit=PLAN_PAGE_SIZE, cursor=cursor)
        for plan in page.items:
            plans += 1
            migration = PendingMigration(
                plan_id=plan.id,
                scenario_id=plan.scenario_id,
                from_version=plan.from_version,
                to_version=plan.to_version,
            )
            while True:
                marked = sessions.mark_pending_migration(
                    plan.tenant_id,
                    plan.scenario_id,
                    plan.from_version,
                    migration,
                    limit=batch_size,
                )
                result.processed += marked
                result.batches += 1
                if monotonic() - start >= time_budget_seconds:
                    last_plan = plan is page.items[-1] and page.next_cursor is None
                    out_of_time = marked >= batch_size or not last_plan
                    break
                if marked < batch_size:
                    break
            if out_of_time:
                break
        if out_of_time or page.next_cursor is None:
            break
        cursor = page.next_cursor
    result.complete = not out_of_time
    result.seconds = monotonic() - start
    result.extra["plans"] = plans
    return result

"""The maintenance work itself, free of Celery: bounded batches under a time budget.

The tasks, ``hearth sweep`` and the benchmark call these, so that all three measure and do
the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Required, TypedDict, Unpack

from stores.config import ConfigStore
from stores.sessions import PendingMigration, SessionStore, Shard

CHECK_EVERY = 1000
"""The most items one store call may handle: the sweep checks its time budget and its lock
at least this often, whatever the batch size (at the design's 5,000 demotions a second, about
every 0.2 s; a larger batch size is split into calls of this size)."""


@dataclass
class SweepResult:
    """What one sweep did: how many items moved, in how many store calls, and whether it finished.

    ``complete`` is False when the time budget ran out while full batches were still coming,
    or when the sweep stopped because its lock was lost (``lock_lost``): the next run goes on
    from there.
    """

    processed: int = 0
    batches: int = 0
    complete: bool = True
    seconds: float = 0.0
    lock_lost: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the task's result)."""
        data = asdict(self)
        extra = data.pop("extra")
        data["seconds"] = round(self.seconds, 4)
        data.update(extra)
        return data


def _never() -> bool:
    return False


def _sharded(shard: Shard | None) -> dict[str, Shard]:
    # A whole sweep calls the store as it always has, so that wrappers of the store's
    # methods written before shards existed keep working.
    return {} if shard is None else {"shard": shard}


def _step_size(batch_size: int, check_every: int) -> int:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if check_every < 1:
        raise ValueError("check_every must be at least 1")
    return min(batch_size, check_every)


def run_batches(
    step: Callable[[int], int],
    *,
    batch_size: int,
    time_budget_seconds: float,
    monotonic: Callable[[], float] = time.monotonic,
    on_batch: Callable[[int], None] | None = None,
    lock_lost: Callable[[], bool] = _never,
    check_every: int = CHECK_EVERY,
) -> SweepResult:
    """Call ``step(limit)`` until it returns less than ``limit``, the budget is spent or the
    lock is lost.

    ``limit`` is ``min(batch_size, check_every)``: the budget and ``lock_lost`` are checked
    after every call, so a large batch size cannot run far past the budget or the lock.
    At least one call always runs, so a tiny budget still makes progress.
    """
    limit = _step_size(batch_size, check_every)
    start = monotonic()
    result = SweepResult()
    while True:
        moved = step(limit)
        result.processed += moved
        result.batches += 1
        if on_batch is not None:
            on_batch(moved)
        if moved < limit:
            result.complete = True
            break
        if lock_lost():
            result.complete = False
            result.lock_lost = True
            break
        if monotonic() - start >= time_budget_seconds:
            result.complete = False
            break
    result.seconds = monotonic() - start
    return result


class SweepOptions(TypedDict, total=False):
    """How a session sweep runs (see :func:`run_batches`); ``shard`` limits it to the
    tenants that shard owns."""

    batch_size: Required[int]
    time_budget_seconds: Required[float]
    on_batch: Callable[[int], None] | None
    lock_lost: Callable[[], bool]
    monotonic: Callable[[], float]
    check_every: int
    shard: Shard | None


def demote_idle(store: SessionStore, **options: Unpack[SweepOptions]) -> SweepResult:
    """Move idle hot sessions to the cold tier, batch by batch."""
    return _store_sweep(store.demote_idle, options)


def purge_expired(store: SessionStore, **options: Unpack[SweepOptions]) -> SweepResult:
    """Remove sessions older than the maximum age from every tier, batch by batch."""
    return _store_sweep(store.purge_expired, options)


def _store_sweep(method: Callable[..., int], options: SweepOptions) -> SweepResult:
    shard = options.get("shard")
    return run_batches(
        lambda limit: method(limit=limit, **_sharded(shard)),
        batch_size=options["batch_size"],
        time_budget_seconds=options["time_budget_seconds"],
        on_batch=options.get("on_batch"),
        lock_lost=options.get("lock_lost", _never),
        monotonic=options.get("monotonic", time.monotonic),
        check_every=options.get("check_every", CHECK_EVERY),
    )


PLAN_PAGE_SIZE = 100


def mark_scenario_migrations(
    config: ConfigStore,
    sessions: SessionStore,
    *,
    batch_size: int,
    time_budget_seconds: float,
    monotonic: Callable[[], float] = time.monotonic,
    lock_lost: Callable[[], bool] = _never,
    check_every: int = CHECK_EVERY,
) -> SweepResult:
    """Give every session still on the old version of a deployed plan its pending migration.

    Plans are visited in ``(tenant_id, id)`` order across tenants. The store skips sessions
    that already carry a pending migration, so a session is marked once however many runs
    (or overlapping ones) visit its plan; a run cut short by the budget or a lost lock is
    finished by the next. Like :func:`run_batches`, each store call marks at most
    ``min(batch_size, check_every)`` sessions and the budget and the lock are checked after
    each.
    """
    limit = _step_size(batch_size, check_every)
    start = monotonic()
    result = SweepResult()
    plans = 0
    cursor: str | None = None
    stopped = False
    while not stopped:
        page = config.list_deployed_migration_plans(limit=PLAN_PAGE_SIZE, cursor=cursor)
        for plan in page.items:
            plans += 1
            migration = PendingMigration(
                plan_id=plan.id,
                scenario_id=plan.scenario_id,
                from_version=plan.from_version,
                to_version=plan.to_version,
            )
            last_plan = plan is page.items[-1] and page.next_cursor is None
            while True:
                marked = sessions.mark_pending_migration(
                    plan.tenant_id,
                    plan.scenario_id,
                    plan.from_version,
                    migration,
                    limit=limit,
                )
                result.processed += marked
                result.batches += 1
                plan_done = marked < limit
                if plan_done and last_plan:
                    break  # nothing is left: the sweep is complete, budget or lock aside
                if lock_lost():
                    stopped = result.lock_lost = True
                    break
                if monotonic() - start >= time_budget_seconds:
                    stopped = True
                    break
                if plan_done:
                    break
            if stopped:
                break
        if stopped or page.next_cursor is None:
            break
        cursor = page.next_cursor
    result.complete = not stopped
    result.seconds = monotonic() - start
    result.extra["plans"] = plans
    return result

"""Sweep loops: bounded batches, a time budget, a lock that can be lost, and progress kept
across runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from uuid import uuid4

import pytest

from stores.common.clock import ManualClock
from stores.config import Agent, InMemoryConfigStore, MigrationPlan, Scenario, ScenarioStep
from stores.sessions import InMemorySessionStore, Session
from workers import sweeps


def _ticking(step: float) -> Callable[[], float]:
    """A monotonic clock that moves ``step`` seconds at every reading."""
    now = [0.0]

    def read() -> float:
        now[0] += step
        return now[0]

    return read


def test_batches_run_until_a_short_batch() -> None:
    left = [23]

    def step(limit: int) -> int:
        moved = min(limit, left[0])
        left[0] -= moved
        return moved

    result = sweeps.run_batches(step, batch_size=10, time_budget_seconds=60)

    assert (result.processed, result.batches, result.complete) == (23, 3, True)


def test_a_spent_budget_stops_between_full_batches_and_says_so() -> None:
    result = sweeps.run_batches(
        lambda limit: limit, batch_size=10, time_budget_seconds=2.5, monotonic=_ticking(1.0)
    )

    assert result.complete is False
    assert result.processed == result.batches * 10
    assert 1 <= result.batches <= 3


def test_at_least_one_batch_runs_even_with_no_budget_left() -> None:
    result = sweeps.run_batches(
        lambda limit: 4, batch_size=10, time_budget_seconds=0.0, monotonic=_ticking(5.0)
    )

    assert (result.processed, result.batches, result.complete) == (4, 1, True)


class _FakeMonotonic:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _SlowStore(InMemorySessionStore):
    """Each demotion call takes ``seconds_per_call`` of the fake clock; records its limits."""

    def __init__(
        self, monotonic: _FakeMonotonic, seconds_per_call: float, clock: ManualClock
    ) -> None:
        super().__init__(clock=clock, hot_ttl=timedelta(minutes=30))
        self.monotonic = monotonic
        self.seconds_per_call = seconds_per_call
        self.limits: list[int] = []

    def demote_idle(self, *, limit: int = 1000) -> int:
        self.limits.append(limit)
        self.monotonic.now += self.seconds_per_call
        return super().demote_idle(limit=limit)


def _idle_sessions(store: InMemorySessionStore, count: int) -> None:
    tenant = uuid4()
    agent = uuid4()
    for i in range(count):
        store.save(Session(tenant_id=tenant, agent_id=agent, channel="web", user_channel_id=str(i)))


def test_the_budget_is_checked_inside_a_large_batch() -> None:
    clock = ManualClock()
    monotonic = _FakeMonotonic()
    store = _SlowStore(monotonic, seconds_per_call=1.0, clock=clock)
    _idle_sessions(store, 250)
    clock.advance(minutes=31)

    result = sweeps.demote_idle(
        store,
        batch_size=200,
        time_budget_seconds=2.5,
        monotonic=monotonic,
        check_every=50,
    )

    # The budget ran out during the third call, inside the first batch of 200: the sweep
    # stops after that call instead of finishing the batch.
    assert store.limits == [50, 50, 50]
    assert (result.processed, result.batches, result.complete) == (150, 3, False)
    assert result.lock_lost is False
    assert store.stats().cold_sessions == 150


def test_calls_are_never_larger_than_check_every() -> None:
    limits: list[int] = []

    def step(limit: int) -> int:
        limits.append(limit)
        return 0

    sweeps.run_batches(step, batch_size=10_000, time_budget_seconds=60)
    sweeps.run_batches(step, batch_size=7, time_budget_seconds=60)

    assert limits == [sweeps.CHECK_EVERY, 7]


def test_a_lost_lock_stops_the_sweep_at_the_next_check() -> None:
    lost = [False]
    limits: list[int] = []

    def step(limit: int) -> int:
        limits.append(limit)
        if len(limits) == 2:
            lost[0] = True  # a heartbeat found the lock gone during this call
        return limit

    result = sweeps.run_batches(
        step,
        batch_size=1000,
        time_budget_seconds=60,
        lock_lost=lambda: lost[0],
        check_every=100,
    )

    assert limits == [100, 100]
    assert (result.processed, result.complete, result.lock_lost) == (200, False, True)
    assert result.as_dict()["lock_lost"] is True


def test_a_sweep_that_finishes_as_its_lock_is_lost_is_complete() -> None:
    result = sweeps.run_batches(
        lambda limit: limit - 1, batch_size=10, time_budget_seconds=60, lock_lost=lambda: True
    )

    assert (result.batches, result.complete, result.lock_lost) == (1, True, False)


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"check_every": 0}])
def test_batch_sizes_below_one_are_refused(bad: dict[str, int]) -> None:
    arguments = {"batch_size": 10, "check_every": 10, **bad}
    with pytest.raises(ValueError, match="at least 1"):
        sweeps.run_batches(lambda limit: 0, time_budget_seconds=1, **arguments)


def _deployed_plan(config: InMemoryConfigStore, sessions: InMemorySessionStore, count: int) -> None:
    tenant = uuid4()
    agent = config.create_agent(Agent(tenant_id=tenant, name="a"))
    scenario = config.create_scenario(
        Scenario(tenant_id=tenant, agent_id=agent.id, name="s", steps=[ScenarioStep(id="x")])
    )
    config.update_scenario(scenario)
    plan = config.create_migration_plan(
        MigrationPlan(tenant_id=tenant, scenario_id=scenario.id, from_version=1, to_version=2)
    )
    config.approve_migration_plan(tenant, plan.id)
    config.deploy_migration_plan(tenant, plan.id)
    for i in range(count):
        sessions.save(
            Session(
                tenant_id=tenant,
                agent_id=agent.id,
                channel="web",
                user_channel_id=str(i),
                active_scenario_id=scenario.id,
                active_scenario_version=1,
            )
        )


def test_scenario_sweep_cut_short_by_its_budget_is_finished_by_the_next_run() -> None:
    clock = ManualClock()
    config = InMemoryConfigStore(clock=clock)
    sessions = InMemorySessionStore(clock=clock)
    _deployed_plan(config, sessions, 25)

    first = sweeps.mark_scenario_migrations(
        config, sessions, batch_size=10, time_budget_seconds=1.5, monotonic=_ticking(1.0)
    )
    second = sweeps.mark_scenario_migrations(
        config, sessions, batch_size=10, time_budget_seconds=60
    )

    assert first.complete is False
    assert 0 < first.processed < 25
    assert second.complete is True
    assert first.processed + second.processed == 25
    assert second.extra["plans"] == 1


def test_scenario_sweep_stops_inside_a_batch_when_its_lock_is_lost() -> None:
    clock = ManualClock()
    config = InMemoryConfigStore(clock=clock)
    sessions = InMemorySessionStore(clock=clock)
    _deployed_plan(config, sessions, 25)
    checks = [0]

    def lost_at_the_second_check() -> bool:
        checks[0] += 1
        return checks[0] >= 2

    first = sweeps.mark_scenario_migrations(
        config,
        sessions,
        batch_size=100,
        time_budget_seconds=60,
        lock_lost=lost_at_the_second_check,
        check_every=5,
    )
    second = sweeps.mark_scenario_migrations(
        config, sessions, batch_size=100, time_budget_seconds=60
    )

    assert (first.processed, first.batches, first.complete, first.lock_lost) == (10, 2, False, True)
    assert (second.processed, second.complete, second.lock_lost) == (15, True, False)

"""Sweep loops: bounded batches, a time budget, and progress kept across runs."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

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


def test_scenario_sweep_cut_short_by_its_budget_is_finished_by_the_next_run() -> None:
    clock = ManualClock()
    config = InMemoryConfigStore(clock=clock)
    sessions = InMemorySessionStore(clock=clock)
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
    for i in range(25):
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

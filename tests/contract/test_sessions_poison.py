"""Poison never enters: every backend refuses, before writing anything, a session that some
tier could not store or give back, and keeps exactly what it accepts, in every tier."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from stores.common.clock import ManualClock
from stores.errors import InvalidInputError, NotFoundError
from stores.sessions import PendingMigration, Session, SessionStore, StepVisit, Tier
from stores.sessions.codec import MAX_FLOAT, MAX_INT_DIGITS, MAX_JSON_DEPTH, MAX_SAVED_VERSION
from stores.sessions.models import MAX_SCENARIO_VERSION
from tests.sessions_support import BACKENDS, HOT_TTL, build_store, module_database

INT32_MAX = 2**31 - 1
LONGEST_INT = 10**MAX_INT_DIGITS - 1
"""The largest integer pydantic's JSON parser reads back: MAX_INT_DIGITS nines."""
ENTERED = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sessions_database(pg_server: str, pg_template: str) -> Iterator[str]:
    """One database for this module's PostgreSQL cold tier."""
    with module_database(pg_server, pg_template) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[SessionStore]:
    """A fresh store of each backend, on the test clock."""
    with build_store(request.param, request, clock) as built:
        yield built


def make(tenant: UUID | None = None, **fields: Any) -> Session:
    """A new session with sensible defaults."""
    fields.setdefault("agent_id", uuid4())
    fields.setdefault("channel", "web")
    fields.setdefault("user_channel_id", f"user-{uuid4().hex[:8]}")
    return Session(tenant_id=tenant or uuid4(), **fields)


def nested(depth: int, *, objects: bool = False) -> Any:
    """A value ``depth`` arrays (or objects) deep around the number 1."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if objects else [value]
    return value


def visit(**fields: Any) -> StepVisit:
    """A step visit; fields are assigned after construction, skipping validation as callers'
    code may."""
    made = StepVisit(step_id="greet", entered_at=ENTERED)
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def migration(**fields: Any) -> PendingMigration:
    """A pending migration; fields are assigned after construction, skipping validation."""
    made = PendingMigration(plan_id=uuid4(), scenario_id=uuid4(), from_version=1, to_version=2)
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def exactly(value: Any) -> Any:
    """``value`` with the type and bits of every number made visible.

    Session equality says ``1e16 == 10**16`` and ``-0.0 == 0.0``; a session that a tier gives
    back changed in either way did not round-trip.
    """
    if isinstance(value, dict):
        return {k: exactly(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exactly(v) for v in value]
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


UTC_PLUS_5 = timezone(timedelta(hours=5))

POISON = [
    pytest.param({"active_scenario_version": 2**31}, "active_scenario_version", id="asv-int4"),
    pytest.param({"active_scenario_version": -1}, "active_scenario_version", id="asv-negative"),
    pytest.param({"version": MAX_SAVED_VERSION + 1}, "version", id="version-plus-1-overflows"),
    pytest.param({"version": 2**63}, "version", id="version-past-bigint"),
    pytest.param({"version": True}, "version", id="version-bool"),
    pytest.param({"version": "1"}, "version", id="version-text"),
    pytest.param({"created_at": "2030-01-01T00:00:00Z"}, "created_at", id="created-at-text"),
    pytest.param(
        {"step_history": [visit(turn_number=2**31)]},
        "step_history.0.turn_number",
        id="turn-number-int4",
    ),
    pytest.param(
        {"step_history": [visit(), visit(turn_number=-1)]},
        "step_history.1.turn_number",
        id="turn-number-negative",
    ),
    pytest.param(
        {"step_history": [visit(scenario_version=2**31)]},
        "step_history.0.scenario_version",
        id="visit-scenario-version-int4",
    ),
    pytest.param(
        {"step_history": [visit(entered_at=datetime(1, 1, 1, tzinfo=UTC_PLUS_5))]},
        "step_history.0.entered_at",
        id="entered-at-before-year-1-in-utc",
    ),
    pytest.param(
        {"pending_migration": migration(from_version=2**31)},
        "pending_migration.from_version",
        id="migration-from-int4",
    ),
    pytest.param(
        {"pending_migration": migration(to_version=2**31)},
        "pending_migration.to_version",
        id="migration-to-int4",
    ),
    pytest.param({"variables": {"n": LONGEST_INT + 1}}, "variables.n", id="int-4301-digits"),
    pytest.param(
        {"variables": {"n": [1, {"m": -LONGEST_INT - 1}]}}, "variables.n", id="int-deep-negative"
    ),
    pytest.param({"variables": {"f": MAX_FLOAT}}, "variables.f", id="float-1e16"),
    pytest.param({"variables": {"f": {"x": -1.5e300}}}, "variables.f", id="float-huge-negative"),
    pytest.param({"variables": {"f": [1.7976931348623157e308]}}, "variables.f", id="float-max"),
    pytest.param(
        {"variables": {"deep": nested(MAX_JSON_DEPTH + 1)}}, "variables.deep", id="arrays-65"
    ),
    pytest.param(
        {"variables": {"deep": nested(MAX_JSON_DEPTH + 1, objects=True)}},
        "variables.deep",
        id="objects-65",
    ),
    pytest.param({"variables": {"deep": nested(300)}}, "variables.deep", id="arrays-300"),
    pytest.param({"variables": {"\udc00": 1}}, "variables", id="name-lone-surrogate"),
    pytest.param({"variables": {"s": ["ok", "\ud800"]}}, "variables", id="text-lone-surrogate"),
]


@pytest.mark.parametrize(("change", "field"), POISON)
def test_poison_is_invalid_input_naming_the_field_and_nothing_is_written(
    store: SessionStore, change: dict[str, Any], field: str
) -> None:
    stored = store.save(make(variables={"keep": 1}))
    bad = stored.model_copy()
    for name, value in change.items():
        setattr(bad, name, value)  # assignment skips validation, as callers' code may
    with pytest.raises(InvalidInputError) as info:
        store.save(bad)
    assert info.value.field == field
    assert store.get(stored.tenant_id, stored.id) == stored
    with pytest.raises(InvalidInputError) as info:
        store.save(bad, overwrite=True)
    assert info.value.field == field
    assert store.get(stored.tenant_id, stored.id) == stored
    new = make()
    for name, value in change.items():
        setattr(new, name, value)
    with pytest.raises(InvalidInputError) as info:
        store.save(new, overwrite=True)
    assert info.value.field == field
    assert store.get(new.tenant_id, new.id) is None


def at_the_limits(tenant: UUID, scenario: UUID) -> Session:
    """A session holding the largest values every tier stores and gives back."""
    return make(
        tenant,
        active_scenario_id=scenario,
        active_scenario_version=MAX_SCENARIO_VERSION,
        current_step_id="collect",
        variables={
            "longest": LONGEST_INT,
            "most_negative": -LONGEST_INT,
            "past_int64": [2**63, -(2**63) - 1, 2**64],
            "floats": [
                9999999999999998.0,  # the largest float under MAX_FLOAT
                -9999999999999998.0,
                5e-324,
                2.2250738585072014e-308,
                1e-7,
                0.1,
                123456.789,
            ],
            "arrays": nested(MAX_JSON_DEPTH),
            "objects": nested(MAX_JSON_DEPTH, objects=True),
            "text": "1e+16 -0.0 \u2028 é 🙂 \\u0000",
        },
        step_history=[
            StepVisit(
                step_id="collect",
                scenario_id=scenario,
                scenario_version=MAX_SCENARIO_VERSION,
                entered_at=datetime(9999, 12, 31, 18, tzinfo=UTC_PLUS_5),
                turn_number=MAX_SCENARIO_VERSION,
            ),
            StepVisit(step_id="greet", entered_at=ENTERED, scenario_version=0, turn_number=0),
        ],
        pending_migration=PendingMigration(
            plan_id=uuid4(),
            scenario_id=scenario,
            from_version=MAX_SCENARIO_VERSION - 1,
            to_version=MAX_SCENARIO_VERSION,
        ),
    )


def test_a_session_at_the_limits_survives_demotion_and_reads_back_exactly(
    store: SessionStore, clock: ManualClock
) -> None:
    tenant, scenario = uuid4(), uuid4()
    session = at_the_limits(tenant, scenario)
    neighbour = store.save(make(tenant))  # demoted in the same batch
    stored = store.save(session)
    assert exactly(stored.variables) == exactly(session.variables)
    clock.advance(seconds=HOT_TTL.total_seconds() + 60)
    assert store.demote_idle() == 2
    assert store.tier_of(tenant, session.id) is Tier.COLD
    found = store.find_by_scenario_step(tenant, scenario, MAX_SCENARIO_VERSION, "collect")
    assert [s.id for s in found.items] == [session.id]
    assert exactly(found.items[0].variables) == exactly(session.variables)
    got = store.get(tenant, session.id)
    assert got == stored
    assert got is not None
    assert exactly(got.variables) == exactly(session.variables)
    assert store.tier_of(tenant, session.id) is Tier.HOT
    assert store.get(tenant, neighbour.id) == neighbour
    again = store.save(got)
    assert again.version == stored.version + 1


def test_negative_zero_is_stored_as_zero_in_every_tier(
    store: SessionStore, clock: ManualClock
) -> None:
    # PostgreSQL's jsonb keeps no sign on zero: the hot copy drops it too, so tiers agree.
    session = make(variables={"z": -0.0, "in": [1.5, {"z": -0.0}], "zero": 0.0})
    stored = store.save(session)
    zero = exactly(0.0)
    expected = {"z": zero, "in": [exactly(1.5), {"z": zero}], "zero": zero}
    assert exactly(stored.variables) == expected
    assert exactly(session.variables)["z"] == exactly(-0.0)  # the caller's copy is untouched
    clock.advance(seconds=HOT_TTL.total_seconds() + 60)
    assert store.demote_idle() == 1
    got = store.get(session.tenant_id, session.id)
    assert got is not None
    assert exactly(got.variables) == expected


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"active_scenario_version": INT32_MAX}, id="asv-int4-max"),
        pytest.param({"active_scenario_version": 0}, id="asv-zero"),
        pytest.param({"step_history": [visit(turn_number=INT32_MAX)]}, id="turn-int4-max"),
        pytest.param({"variables": {"n": -LONGEST_INT}}, id="int-4300-digits"),
        pytest.param({"variables": {"f": -9999999999999998.0}}, id="float-under-1e16"),
        pytest.param({"variables": {"deep": nested(MAX_JSON_DEPTH)}}, id="arrays-64"),
        pytest.param(
            {"variables": {"deep": nested(MAX_JSON_DEPTH, objects=True)}}, id="objects-64"
        ),
    ],
)
def test_values_at_a_limit_are_accepted_by_an_update(
    store: SessionStore, change: dict[str, Any]
) -> None:
    stored = store.save(make(variables={"keep": 1}))
    edited = stored.model_copy()
    for name, value in change.items():
        setattr(edited, name, value)
    again = store.save(edited)
    assert again.version == 2
    assert store.get(stored.tenant_id, stored.id) == again


def test_the_highest_version_a_caller_may_hand_in_passes_the_checks(store: SessionStore) -> None:
    # Its successor still fits PostgreSQL's bigint; the version above it is refused (POISON).
    session = make()
    session.version = MAX_SAVED_VERSION
    with pytest.raises(NotFoundError):
        store.save(session)
    assert store.get(session.tenant_id, session.id) is None
    assert store.save(session, overwrite=True).version == 1

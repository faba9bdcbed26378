"""The AuditStore contract: every backend behaves like the in-memory reference."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from stores.audit import AuditEvent, AuditStore, InMemoryAuditStore, TurnRecord
from stores.common.clock import ManualClock
from stores.errors import DuplicateError, InvalidInputError, NotFoundError
from stores.postgres.engine import create_engine
from tests import services


@pytest.fixture(scope="module")
def shared_engine(pg_server: str, pg_template: str) -> Iterator[sa.Engine]:
    """One migrated database for the whole module; each test uses fresh tenant ids."""
    name = services.unique_name("hearth_audit")
    url = services.create_database(pg_server, name, template=pg_template)
    engine = create_engine(url, pool_size=2)
    try:
        yield engine
    finally:
        engine.dispose()
        services.drop_database(pg_server, name)


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[AuditStore]:
    if request.param == "memory":
        yield InMemoryAuditStore(clock=clock)
        return
    from stores.audit import PostgresAuditStore

    engine = request.getfixturevalue("shared_engine")
    yield PostgresAuditStore(engine, clock=clock)


@pytest.fixture
def tenant() -> UUID:
    return uuid4()


def turn(tenant: UUID, session: UUID, n: int, **kw: Any) -> TurnRecord:
    kw.setdefault("user_message", f"m{n}")
    return TurnRecord(tenant_id=tenant, session_id=session, turn_number=n, **kw)


def collect(fetch: Any, limit: int) -> list[Any]:
    """Walk every page of a listing; fail on a repeated item."""
    seen: list[Any] = []
    cursor = None
    while True:
        page = fetch(limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    ids = [i.id for i in seen]
    assert len(ids) == len(set(ids)), "a page repeated an item"
    return seen


def test_record_turn_round_trips_and_is_stamped_by_the_clock(
    store: AuditStore, tenant: UUID, clock: ManualClock
) -> None:
    t = turn(
        tenant,
        uuid4(),
        0,
        assistant_response="hi",
        context_extracted={"intent": "greet", "nested": {"a": [1, 2.5, None, True]}},
        rules_matched=[{"rule_id": str(uuid4()), "score": 0.9}],
        scenario_state={"step": "s1"},
        tools_executed=[{"tool": "lookup", "ok": True}],
        token_usage={"input": 10, "output": 3},
        latency_ms=42,
        created_at=datetime(2000, 1, 1, tzinfo=UTC),
    )
    stored = store.record_turn(t)
    assert stored.created_at == clock()
    assert store.get_turn(tenant, t.id) == stored
    assert store.get_turn(str(tenant), str(t.id)) == stored
    assert stored.model_dump(exclude={"created_at"}) == t.model_dump(exclude={"created_at"})


def test_duplicate_turn_number_in_a_session_is_refused(store: AuditStore, tenant: UUID) -> None:
    session = uuid4()
    first = store.record_turn(turn(tenant, session, 1))
    with pytest.raises(DuplicateError):
        store.record_turn(turn(tenant, session, 1, user_message="again"))
    with pytest.raises(DuplicateError):
        store.record_turn(first.model_copy(update={"turn_number": 2}))
    with pytest.raises(DuplicateError):
        store.record_turn(first.model_copy(update={"tenant_id": uuid4(), "turn_number": 2}))
    store.record_turn(turn(tenant, uuid4(), 1))
    store.record_turn(turn(uuid4(), session, 1))
    items = store.list_turns_by_session(tenant, session).items
    assert [(i.id, i.user_message) for i in items] == [(first.id, "m1")]


def test_turns_by_session_are_in_turn_order_and_paginate(
    store: AuditStore, tenant: UUID, clock: ManualClock
) -> None:
    session = uuid4()
    for n in [3, 0, 4, 1, 2]:
        store.record_turn(turn(tenant, session, n))
        clock.advance(seconds=1)
    store.record_turn(turn(tenant, uuid4(), 9))
    store.record_turn(turn(uuid4(), session, 7))
    got = collect(lambda **kw: store.list_turns_by_session(tenant, session, **kw), 2)
    assert [t.turn_number for t in got] == [0, 1, 2, 3, 4]
    assert store.list_turns_by_session(tenant, uuid4()).items == []
    assert store.list_turns_by_session(tenant, session, limit=5).next_cursor is None


def test_turns_by_tenant_newest_first_in_a_half_open_range(
    store: AuditStore, tenant: UUID, clock: ManualClock
) -> None:
    start = clock()
    made = []
    for n in range(6):
        made.append(store.record_turn(turn(tenant, uuid4(), n)))
        if n % 2:  # pairs share an instant, so the id breaks ties
            clock.advance(minutes=1)
    store.record_turn(turn(uuid4(), uuid4(), 0))
    got = collect(lambda **kw: store.list_turns(tenant, **kw), 4)
    assert [t.id for t in got] == [
        t.id for t in sorted(made, key=lambda t: (t.created_at, t.id), reverse=True)
    ]
    ranged = collect(
        lambda **kw: store.list_turns(
            tenant, since=start + timedelta(minutes=1), until=start + timedelta(minutes=2), **kw
        ),
        1,
    )
    assert {t.turn_number for t in ranged} == {2, 3}
    assert store.list_turns(tenant, since=start + timedelta(days=1)).items == []
    assert store.list_turns(uuid4()).items == []


def test_event_round_trip_and_turn_reference(
    store: AuditStore, tenant: UUID, clock: ManualClock
) -> None:
    t = store.record_turn(turn(tenant, uuid4(), 0))
    e = AuditEvent(
        tenant_id=tenant,
        session_id=t.session_id,
        turn_id=t.id,
        event_type="rule.matched",
        event_data={"rule": "r1", "list": [1, "two"]},
    )
    stored = store.record_event(e)
    assert stored.created_at == clock()
    assert store.get_event(tenant, e.id) == stored
    with pytest.raises(DuplicateError):
        store.record_event(e)
    bare = store.record_event(AuditEvent(tenant_id=tenant, event_type="system.start"))
    assert bare.session_id is None
    assert bare.turn_id is None


def test_event_for_a_missing_or_foreign_turn_is_not_found(store: AuditStore, tenant: UUID) -> None:
    foreign = store.record_turn(turn(uuid4(), uuid4(), 0))
    for turn_id in (uuid4(), foreign.id):
        with pytest.raises(NotFoundError):
            store.record_event(AuditEvent(tenant_id=tenant, turn_id=turn_id, event_type="x"))
    assert store.list_events(tenant).items == []


def test_events_filter_by_type_session_turn_and_time(
    store: AuditStore, tenant: UUID, clock: ManualClock
) -> None:
    start = clock()
    s1, s2 = uuid4(), uuid4()
    t1 = store.record_turn(turn(tenant, s1, 0))
    made: list[AuditEvent] = []
    for i in range(9):
        session = s1 if i % 3 else s2
        made.append(
            store.record_event(
                AuditEvent(
                    tenant_id=tenant,
                    session_id=session,
                    event_type=f"type{i % 3}",
                    turn_id=t1.id if session == s1 and i < 4 else None,
                )
            )
        )
        clock.advance(seconds=10)
    store.record_event(AuditEvent(tenant_id=uuid4(), session_id=s1, event_type="type1"))

    def ids(**kw: Any) -> list[UUID]:
        return [e.id for e in collect(lambda **p: store.list_events(tenant, **kw, **p), 2)]

    newest_first = list(reversed(made))
    assert ids() == [e.id for e in newest_first]
    assert ids(event_type="type1") == [e.id for e in newest_first if e.event_type == "type1"]
    assert ids(event_type=["type1", "type2"]) == [
        e.id for e in newest_first if e.event_type != "type0"
    ]
    assert ids(session_id=s2) == [e.id for e in newest_first if e.session_id == s2]
    assert ids(turn_id=t1.id) == [e.id for e in newest_first if e.turn_id == t1.id]
    assert ids(session_id=s1, event_type="type2") == [
        e.id for e in newest_first if e.session_id == s1 and e.event_type == "type2"
    ]
    window = ids(since=start + timedelta(seconds=20), until=start + timedelta(seconds=50))
    assert window == [e.id for e in newest_first[4:7]]
    assert ids(event_type="nothing") == []


def test_other_tenants_see_nothing(store: AuditStore, tenant: UUID) -> None:
    t = store.record_turn(turn(tenant, uuid4(), 0))
    e = store.record_event(AuditEvent(tenant_id=tenant, session_id=t.session_id, event_type="x"))
    other = uuid4()
    assert store.get_turn(other, t.id) is None
    assert store.get_event(other, e.id) is None
    assert store.list_turns_by_session(other, t.session_id).items == []
    assert store.list_turns(other).items == []
    assert store.list_events(other).items == []
    assert store.list_events(other, session_id=t.session_id).items == []
    with pytest.raises(NotFoundError):
        store.record_event(AuditEvent(tenant_id=other, turn_id=t.id, event_type="x"))


def test_returned_records_are_copies(store: AuditStore, tenant: UUID) -> None:
    t = store.record_turn(turn(tenant, uuid4(), 0, context_extracted={"k": "v"}))
    t.context_extracted["k"] = "changed"
    fetched = store.get_turn(tenant, t.id)
    assert fetched is not None
    assert fetched.context_extracted == {"k": "v"}


def _bad_turns(tenant: UUID) -> list[tuple[TurnRecord, str]]:
    good = turn(tenant, uuid4(), 0)
    return [
        (good.model_copy(update={"user_message": "x" * 100_001}), "user_message"),
        (good.model_copy(update={"assistant_response": "a\x00b"}), "assistant_response"),
        (good.model_copy(update={"context_extracted": {"x": math.nan}}), "context_extracted"),
        (good.model_copy(update={"token_usage": {"x": math.inf}}), "token_usage"),
        (good.model_copy(update={"scenario_state": {"k\x00": 1}}), "scenario_state"),
        (good.model_copy(update={"tools_executed": [object()]}), "tools_executed"),
        (good.model_copy(update={"rules_matched": ["x" * 1_000_001]}), "rules_matched"),
        (good.model_copy(update={"turn_number": -1}), "turn_number"),
        (good.model_copy(update={"latency_ms": -5}), "latency_ms"),
        (good.model_copy(update={"turn_number": 2**31}), "turn_number"),
        (good.model_copy(update={"latency_ms": 2**31}), "latency_ms"),
    ]


def test_invalid_turns_are_refused_and_nothing_is_written(store: AuditStore, tenant: UUID) -> None:
    for bad, field in _bad_turns(tenant):
        with pytest.raises(InvalidInputError) as info:
            store.record_turn(bad)
        assert info.value.field == field
    assert store.list_turns(tenant).items == []


def test_invalid_events_are_refused_and_nothing_is_written(store: AuditStore, tenant: UUID) -> None:
    good = AuditEvent(tenant_id=tenant, event_type="x")
    bad = [
        (good.model_copy(update={"event_type": ""}), "event_type"),
        (good.model_copy(update={"event_type": "t" * 201}), "event_type"),
        (good.model_copy(update={"event_data": {"v": math.nan}}), "event_data"),
        (good.model_copy(update={"event_data": {"when": datetime.now(UTC)}}), "event_data"),
        (good.model_copy(update={"event_data": {"v": ["a\ud800"]}}), "event_data"),
    ]
    for event, field in bad:
        with pytest.raises(InvalidInputError) as info:
            store.record_event(event)
        assert info.value.field == field
    assert store.list_events(tenant).items == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s, t: s.get_turn("nope", uuid4()), "tenant_id"),
        (lambda s, t: s.get_turn(t, "nope"), "turn_id"),
        (lambda s, t: s.get_event(t, 42), "event_id"),
        (lambda s, t: s.list_turns_by_session(t, "bad"), "session_id"),
        (lambda s, t: s.list_turns_by_session(t, uuid4(), limit=0), "limit"),
        (lambda s, t: s.list_turns_by_session(t, uuid4(), cursor="!!"), "cursor"),
        (lambda s, t: s.list_turns_by_session(t, uuid4(), cursor="WyJ4Il0"), "cursor"),
        (lambda s, t: s.list_turns(t, limit=1001), "limit"),
        (lambda s, t: s.list_turns(t, since=datetime(2030, 1, 1)), "since"),
        (lambda s, t: s.list_turns(t, until="2030-01-01"), "until"),
        (lambda s, t: s.list_turns(t, cursor="WzFd"), "cursor"),
        (lambda s, t: s.list_events(t, session_id="x"), "session_id"),
        (lambda s, t: s.list_events(t, turn_id="x"), "turn_id"),
        (lambda s, t: s.list_events(t, event_type="e" * 201), "event_type"),
        (lambda s, t: s.list_events(t, event_type=[1]), "event_type"),
        (lambda s, t: s.list_events("bad"), "tenant_id"),
    ],
)
def test_bad_arguments_are_invalid_input(
    store: AuditStore, tenant: UUID, call: Any, field: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        call(store, tenant)
    assert info.value.field == field


def test_an_event_type_filter_that_is_not_text_is_invalid_input(store: AuditStore) -> None:
    number: Any = 5
    with pytest.raises(InvalidInputError):
        store.list_events(uuid4(), event_type=number)

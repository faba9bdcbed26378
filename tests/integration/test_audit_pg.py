"""What only the PostgreSQL audit store has: concurrent writers and lost connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from stores.audit import AuditEvent, PostgresAuditStore, TurnRecord
from stores.errors import DuplicateError, StoreUnavailableError
from stores.postgres.engine import create_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = create_engine(database_url, pool_size=8)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> PostgresAuditStore:
    return PostgresAuditStore(engine)


def test_concurrent_writers_of_one_turn_number_land_exactly_once(store: PostgresAuditStore) -> None:
    tenant, session = uuid4(), uuid4()
    barrier = threading.Barrier(6)
    results: list[Any] = []

    def write(i: int) -> None:
        barrier.wait(5)
        try:
            results.append(
                store.record_turn(
                    TurnRecord(
                        tenant_id=tenant,
                        session_id=session,
                        turn_number=1,
                        user_message=f"writer {i}",
                    )
                )
            )
        except DuplicateError as exc:
            results.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    landed = [r for r in results if isinstance(r, TurnRecord)]
    assert len(results) == 6
    assert len(landed) == 1
    assert store.list_turns_by_session(tenant, session).items == landed


def test_a_write_killed_mid_transaction_leaves_nothing_and_the_store_recovers(
    store: PostgresAuditStore, engine: sa.Engine
) -> None:
    tenant, session = uuid4(), uuid4()
    turn = TurnRecord(tenant_id=tenant, session_id=session, turn_number=0, user_message="hi")
    out: dict[str, Any] = {}
    with engine.connect() as other:
        other.begin()
        # An uncommitted row with the same key makes the store's insert wait on the index.
        other.execute(
            sa.text(
                "INSERT INTO turn_records (id, tenant_id, session_id, turn_number, user_message) "
                "VALUES (:id, :t, :s, 0, 'other')"
            ),
            {"id": uuid4(), "t": tenant, "s": session},
        )

        def write() -> None:
            try:
                out["result"] = store.record_turn(turn)
            except Exception as exc:
                out["error"] = exc

        thread = threading.Thread(target=write)
        thread.start()
        pid = _blocked_insert(engine)
        with engine.connect() as killer:
            assert killer.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        thread.join(10)
        other.rollback()
    assert isinstance(out.get("error"), StoreUnavailableError)
    assert store.get_turn(tenant, turn.id) is None
    assert store.list_turns(tenant).items == []
    stored = store.record_turn(turn)
    event = store.record_event(AuditEvent(tenant_id=tenant, turn_id=stored.id, event_type="ok"))
    assert store.list_events(tenant, turn_id=stored.id).items == [event]


def _blocked_insert(engine: sa.Engine) -> int:
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            pid = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO turn_records%'"
                )
            ).scalar()
            if pid is not None:
                return int(pid)
            conn.rollback()
            time.sleep(0.005)
    raise AssertionError("the store's insert never waited")


def test_time_range_listing_uses_the_tenant_time_index(
    store: PostgresAuditStore, engine: sa.Engine
) -> None:
    tenant: UUID = uuid4()
    for n in range(3):
        store.record_turn(
            TurnRecord(tenant_id=tenant, session_id=uuid4(), turn_number=n, user_message="m")
        )
    with engine.connect() as conn:
        conn.execute(sa.text("SET enable_seqscan = off"))
        plan = "\n".join(
            conn.execute(
                sa.text(
                    "EXPLAIN SELECT * FROM turn_records WHERE tenant_id = :t "
                    "AND (created_at, id) < (now(), :i) ORDER BY created_at DESC, id DESC LIMIT 5"
                ),
                {"t": tenant, "i": uuid4()},
            ).scalars()
        )
    assert "ix_turn_records_tenant_id_created_at" in plan

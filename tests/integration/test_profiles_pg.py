"""What only the PostgreSQL profile store has: transactions, row locks, lost connections."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from stores.errors import ConflictError, StoreError, StoreUnavailableError
from stores.postgres.engine import create_engine, normalize_url
from stores.profiles import ChannelIdentity, CustomerProfile, PostgresProfileStore
from stores.profiles import postgres as profiles_pg

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = create_engine(database_url, pool_size=4)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> PostgresProfileStore:
    return PostgresProfileStore(engine)


@pytest.fixture
def tenant() -> UUID:
    return uuid4()


def profile(store: PostgresProfileStore, tenant: UUID, channel_user: str) -> CustomerProfile:
    p = store.create_profile(CustomerProfile(tenant_id=tenant))
    store.link_identity(
        ChannelIdentity(
            tenant_id=tenant, profile_id=p.id, channel="web", channel_user_id=channel_user
        )
    )
    return p


def wait_until_blocked(engine: sa.Engine, query_start: str) -> int:
    """The pid of the backend whose statement starting ``query_start`` waits for a lock."""
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            pid = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE :q"
                ),
                {"q": query_start + "%"},
            ).scalar()
            if pid is not None:
                return int(pid)
            conn.rollback()
            time.sleep(0.005)
    raise AssertionError(f"no backend blocked on {query_start!r}")


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def snapshot(engine: sa.Engine, tenant: UUID) -> dict[str, list[tuple[Any, ...]]]:
    """Every profile row of the tenant, table by table, for before/after comparisons."""
    out = {}
    with engine.connect() as conn:
        for table in (
            "customer_profiles",
            "channel_identities",
            "profile_fields",
            "profile_assets",
        ):
            rows = conn.execute(
                sa.text(f"SELECT * FROM {table} WHERE tenant_id = :t ORDER BY id"), {"t": tenant}
            ).all()
            out[table] = [tuple(r) for r in rows]
    return out


def test_a_merge_that_fails_midway_rolls_back_whole(
    store: PostgresProfileStore, engine: sa.Engine, tenant: UUID
) -> None:
    target, source = profile(store, tenant, "t"), profile(store, tenant, "s")
    store.set_field(tenant, target.id, "name", "old")
    store.set_field(tenant, source.id, "name", "new")
    store.set_field(tenant, source.id, "city", "Rome")
    # The merge marks the source last: by then identities and fields have moved.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse_merge() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'merge refused'; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER refuse_merge BEFORE UPDATE OF merged_into_id ON customer_profiles "
                "FOR EACH ROW WHEN (NEW.merged_into_id IS NOT NULL) EXECUTE FUNCTION refuse_merge()"
            )
        )
    before = snapshot(engine, tenant)
    with pytest.raises(StoreError) as info:
        store.merge_profiles(tenant, source.id, target.id)
    assert "merge refused" in str(info.value)
    assert snapshot(engine, tenant) == before
    assert store.resolve_identity(tenant, "web", "s") == source
    assert store.get_field(tenant, target.id, "name").field_value == "old"  # type: ignore[union-attr]

    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER refuse_merge ON customer_profiles"))
    assert store.merge_profiles(tenant, source.id, target.id).id == target.id
    assert store.resolve_identity(tenant, "web", "s") == store.get_profile(tenant, target.id)
    assert store.get_field(tenant, target.id, "name").field_value == "new"  # type: ignore[union-attr]


def _race_a_field_set(
    store: PostgresProfileStore, engine: sa.Engine, tenant: UUID, pid: UUID
) -> dict[str, Any]:
    """Make a set_field lose the race for the current value, deterministically.

    Another transaction holds the current value's row; the store's set blocks on it, the
    other transaction replaces the value and commits, and the store's insert then meets
    the other's new current value in ``uq_profile_fields_current``.
    """
    with engine.connect() as other:
        other.begin()
        current = other.execute(
            sa.text(
                "SELECT id FROM profile_fields WHERE tenant_id = :t AND profile_id = :p "
                "AND field_name = 'plan' AND valid_to IS NULL FOR UPDATE"
            ),
            {"t": tenant, "p": pid},
        ).scalar_one()
        thread, out = in_thread(lambda: store.set_field(tenant, pid, "plan", "from-store"))
        wait_until_blocked(engine, "UPDATE profile_fields")
        other.execute(
            sa.text("UPDATE profile_fields SET valid_to = now() WHERE id = :id"), {"id": current}
        )
        other.execute(
            sa.text(
                "INSERT INTO profile_fields (id, tenant_id, profile_id, field_name, field_value) "
                "VALUES (:id, :t, :p, 'plan', '\"from-other\"')"
            ),
            {"id": uuid4(), "t": tenant, "p": pid},
        )
        other.commit()
    thread.join(10)
    assert not thread.is_alive()
    return out


def test_concurrent_field_sets_leave_one_current_value_and_the_loser_retries(
    store: PostgresProfileStore, engine: sa.Engine, tenant: UUID
) -> None:
    p = profile(store, tenant, "u")
    store.set_field(tenant, p.id, "plan", "basic")
    out = _race_a_field_set(store, engine, tenant, p.id)
    assert "error" not in out, out.get("error")
    history = store.field_history(tenant, p.id, field_name="plan").items
    assert [h.field_value for h in history] == ["basic", "from-other", "from-store"]
    assert [h.valid_to is None for h in history] == [False, False, True]
    assert history[1].valid_to == history[2].valid_from


def test_a_field_set_that_keeps_losing_is_a_conflict_and_writes_nothing(
    store: PostgresProfileStore, engine: sa.Engine, tenant: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(profiles_pg, "SET_FIELD_ATTEMPTS", 1)
    p = profile(store, tenant, "u")
    store.set_field(tenant, p.id, "plan", "basic")
    out = _race_a_field_set(store, engine, tenant, p.id)
    assert isinstance(out.get("error"), ConflictError)
    values = [h.field_value for h in store.field_history(tenant, p.id, field_name="plan").items]
    assert values == ["basic", "from-other"]
    assert store.get_field(tenant, p.id, "plan").field_value == "from-other"  # type: ignore[union-attr]


def test_many_concurrent_sets_all_land_with_exactly_one_current(
    store: PostgresProfileStore, engine: sa.Engine, tenant: UUID
) -> None:
    p = profile(store, tenant, "u")
    barrier = threading.Barrier(6)

    def worker(i: int) -> Any:
        barrier.wait(5)
        return store.set_field(tenant, p.id, "score", i)

    threads = [in_thread(lambda i=i: worker(i)) for i in range(6)]  # type: ignore[misc]
    for thread, _ in threads:
        thread.join(20)
    errors = [out["error"] for _, out in threads if "error" in out]
    assert all(isinstance(e, ConflictError) for e in errors), errors
    history = store.field_history(tenant, p.id, field_name="score").items
    assert len(history) == 6 - len(errors)
    assert [h.valid_to is None for h in history].count(True) == 1
    # The values chain without gaps or overlaps (equal starts are zero-length, so closed first).
    chain = sorted(history, key=lambda h: (h.valid_from, h.valid_to is None, h.valid_to))
    for earlier, later in itertools.pairwise(chain):
        assert earlier.valid_to == later.valid_from
    with (
        engine.connect() as conn,
        pytest.raises(sa.exc.IntegrityError, match="uq_profile_fields_current"),
    ):
        conn.execute(
            sa.text(
                "INSERT INTO profile_fields (id, tenant_id, profile_id, field_name) "
                "VALUES (:id, :t, :p, 'score')"
            ),
            {"id": uuid4(), "t": tenant, "p": p.id},
        )


def test_a_connection_killed_mid_merge_leaves_no_partial_write(
    store: PostgresProfileStore, engine: sa.Engine, tenant: UUID
) -> None:
    target, source = profile(store, tenant, "t"), profile(store, tenant, "s")
    store.set_field(tenant, target.id, "name", "old")
    store.set_field(tenant, source.id, "name", "new")
    before = snapshot(engine, tenant)
    with engine.connect() as other:
        other.begin()
        # Hold the source's identity so the merge stops after it has closed the old field.
        other.execute(
            sa.text("SELECT 1 FROM channel_identities WHERE tenant_id = :t FOR UPDATE"),
            {"t": tenant},
        )
        thread, out = in_thread(lambda: store.merge_profiles(tenant, source.id, target.id))
        pid = wait_until_blocked(engine, "UPDATE channel_identities")
        with engine.connect() as killer:
            assert killer.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        thread.join(10)
        other.rollback()
    assert isinstance(out.get("error"), StoreUnavailableError)
    assert snapshot(engine, tenant) == before
    assert store.get_profile(tenant, source.id) == source
    merged = store.merge_profiles(tenant, source.id, target.id)
    assert merged.id == target.id
    assert store.get_field(tenant, source.id, "name").field_value == "new"  # type: ignore[union-attr]


def test_the_store_recovers_after_its_connections_are_killed(
    store: PostgresProfileStore, database_url: str, tenant: UUID
) -> None:
    p = profile(store, tenant, "u")
    admin = sa.create_engine(normalize_url(database_url), poolclass=sa.pool.NullPool)
    with admin.connect() as killer:
        killed = killer.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    admin.dispose()
    assert killed
    assert store.get_profile(tenant, p.id) == p
    assert store.set_field(tenant, p.id, "x", 1).field_value == 1


def test_a_write_waiting_on_a_merge_follows_it_to_the_survivor(
    store: PostgresProfileStore, engine: sa.Engine, tenant: UUID
) -> None:
    target, source = profile(store, tenant, "t"), profile(store, tenant, "s")
    with engine.connect() as other:
        other.begin()
        # Pause the merge after it has locked both profiles.
        other.execute(
            sa.text("SELECT 1 FROM channel_identities WHERE tenant_id = :t FOR UPDATE"),
            {"t": tenant},
        )
        merging, merge_out = in_thread(lambda: store.merge_profiles(tenant, source.id, target.id))
        wait_until_blocked(engine, "UPDATE channel_identities")
        writing, write_out = in_thread(lambda: store.set_field(tenant, source.id, "late", True))
        wait_until_blocked(engine, "SELECT customer_profiles")
        other.rollback()
    merging.join(10)
    writing.join(10)
    assert merge_out["result"].id == target.id
    assert write_out["result"].profile_id == target.id
    assert store.get_field(tenant, target.id, "late").field_value is True  # type: ignore[union-attr]
    with engine.connect() as conn:
        stray = conn.execute(
            sa.text("SELECT count(*) FROM profile_fields WHERE profile_id = :p"), {"p": source.id}
        ).scalar()
    assert stray == 0

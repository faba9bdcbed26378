"""What only the PostgreSQL configuration store has: transactions, locks, lost connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from stores.config import Agent, PostgresConfigStore, Rule, Scenario, ScenarioStep, Template
from stores.errors import DuplicateError, StoreError, StoreUnavailableError
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
def store(engine: sa.Engine) -> PostgresConfigStore:
    return PostgresConfigStore(engine)


@pytest.fixture
def agent(store: PostgresConfigStore) -> Agent:
    return store.create_agent(Agent(tenant_id=uuid4(), name="support"))


def sql(engine: sa.Engine, *statements: str, **params: Any) -> list[Any]:
    out: list[Any] = []
    with engine.begin() as conn:
        for statement in statements:
            result = conn.execute(sa.text(statement), params)
            out.append(result.all() if result.returns_rows else None)
    return out


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


def blocked_backend(engine: sa.Engine) -> int:
    """The pid of the backend waiting for a lock in this database."""
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            pid = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
            if pid is not None:
                return int(pid)
            conn.rollback()
            time.sleep(0.005)
    raise AssertionError("no backend is waiting for a lock")


def test_a_failing_scenario_update_leaves_no_archive_and_no_new_version(
    store: PostgresConfigStore, engine: sa.Engine, agent: Agent
) -> None:
    v1 = store.create_scenario(
        Scenario(
            tenant_id=agent.tenant_id, agent_id=agent.id, name="s", steps=[ScenarioStep(id="a")]
        )
    )
    sql(
        engine,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'update refused'; END $$",
        "CREATE TRIGGER refuse BEFORE UPDATE ON scenarios FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    with pytest.raises(StoreError, match="update refused"):
        store.update_scenario(v1.model_copy(update={"name": "s2"}))
    # The archive row was written before the failing update: it must be gone with it.
    assert store.list_scenario_archives(agent.tenant_id, v1.id).items == []
    assert store.get_scenario(agent.tenant_id, v1.id) == v1
    sql(engine, "DROP TRIGGER refuse ON scenarios")
    assert store.update_scenario(v1.model_copy(update={"name": "s2"})).version == 2


def test_a_failing_agent_delete_deletes_nothing(
    store: PostgresConfigStore, engine: sa.Engine, agent: Agent
) -> None:
    tid, aid = agent.tenant_id, agent.id
    rule = store.create_rule(
        Rule(tenant_id=tid, agent_id=aid, name="r", condition_text="c", action_type="reply")
    )
    store.create_template(Template(tenant_id=tid, agent_id=aid, name="t", content="x"))
    sql(
        engine,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'template delete refused'; END $$",
        "CREATE TRIGGER refuse BEFORE UPDATE ON templates FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    with pytest.raises(StoreError, match="template delete refused"):
        store.delete_agent(tid, aid)
    assert store.get_agent(tid, aid) == agent
    assert store.get_rule(tid, rule.id) == rule
    sql(engine, "DROP TRIGGER refuse ON templates")
    assert store.delete_agent(tid, aid) is True
    assert store.get_rule(tid, rule.id) is None


def test_a_connection_killed_mid_update_writes_nothing_and_the_store_recovers(
    store: PostgresConfigStore, engine: sa.Engine, agent: Agent
) -> None:
    v1 = store.create_scenario(Scenario(tenant_id=agent.tenant_id, agent_id=agent.id, name="s"))
    # The trigger makes the update wait, after the archive insert, until we let it go.
    sql(
        engine,
        "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$",
        "CREATE TRIGGER hold BEFORE UPDATE ON scenarios FOR EACH ROW EXECUTE FUNCTION hold()",
    )
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(4242)"))
        thread, out = in_thread(lambda: store.update_scenario(v1.model_copy(update={"name": "x"})))
        pid = blocked_backend(engine)
        holder.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        thread.join(10)
        holder.execute(sa.text("SELECT pg_advisory_unlock(4242)"))
        holder.commit()
    assert isinstance(out.get("error"), StoreUnavailableError), out
    assert store.get_scenario(agent.tenant_id, v1.id) == v1
    assert store.list_scenario_archives(agent.tenant_id, v1.id).items == []
    sql(engine, "DROP TRIGGER hold ON scenarios")
    assert store.update_scenario(v1.model_copy(update={"name": "x"})).version == 2


def test_concurrent_creates_of_one_agent_name_let_exactly_one_in(
    store: PostgresConfigStore,
) -> None:
    tenant = uuid4()
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def create() -> None:
        barrier.wait()
        try:
            store.create_agent(Agent(tenant_id=tenant, name="same"))
            outcomes.append("created")
        except DuplicateError:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] + ["duplicate"] * 5
    assert len(store.list_agents(tenant).items) == 1


def test_a_rule_created_while_its_agent_is_deleted_is_deleted_too(
    store: PostgresConfigStore, engine: sa.Engine, agent: Agent
) -> None:
    tid, aid = agent.tenant_id, agent.id
    # Hold the agent row as a rule insert would, then delete the agent meanwhile.
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT 1 FROM agents WHERE id = :a FOR SHARE"), {"a": aid})
        thread, out = in_thread(lambda: store.delete_agent(tid, aid))
        blocked_backend(engine)
        holder.execute(
            sa.text(
                "INSERT INTO rules (id, tenant_id, agent_id, name, condition_text, action_type) "
                "VALUES (:id, :t, :a, 'late', 'c', 'reply')"
            ),
            {"id": uuid4(), "t": tid, "a": aid},
        )
        holder.commit()
        thread.join(10)
    assert out.get("result") is True, out
    assert store.list_rules(tid, aid).items == []


def test_an_unreachable_database_is_store_unavailable() -> None:
    store = PostgresConfigStore.from_url("postgresql://nobody@127.0.0.1:1/none", dimensions=1536)
    try:
        with pytest.raises(StoreUnavailableError):
            store.get_agent(uuid4(), uuid4())
    finally:
        store.close()


def test_dimensions_are_read_from_the_schema(database_url: str) -> None:
    store = PostgresConfigStore.from_url(database_url)
    try:
        assert store.dimensions == 1536
    finally:
        store.close()


def test_unknown_tenant_ids_see_nothing_through_search(
    store: PostgresConfigStore, agent: Agent
) -> None:
    store.create_rule(
        Rule(
            tenant_id=agent.tenant_id,
            agent_id=agent.id,
            name="r",
            condition_text="c",
            action_type="reply",
            embedding=[1.0] * 1536,
        )
    )
    other: UUID = uuid4()
    assert store.vector_search_rules(other, agent.id, [1.0] * 1536) == []


def test_timestamps_come_back_in_utc_whatever_the_session_time_zone(database_url: str) -> None:
    eng = create_engine(database_url, connect_args={"options": "-c TimeZone=Asia/Kolkata"})
    try:
        store = PostgresConfigStore(eng)
        made = store.create_agent(Agent(tenant_id=uuid4(), name="tz"))
        got = store.get_agent(made.tenant_id, made.id)
        assert got is not None
        assert got.created_at.utcoffset() == timedelta(0)
        assert got.created_at == made.created_at
    finally:
        eng.dispose()


def test_an_exhausted_connection_pool_is_store_unavailable(database_url: str) -> None:
    eng = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    store = PostgresConfigStore(eng, dimensions=1536)
    try:
        with eng.connect(), pytest.raises(StoreUnavailableError):
            store.get_agent(uuid4(), uuid4())
        assert store.get_agent(uuid4(), uuid4()) is None
    finally:
        eng.dispose()


def test_text_the_driver_cannot_encode_is_invalid_input(engine: sa.Engine) -> None:
    from stores.driver_errors import translated
    from stores.errors import InvalidInputError

    with pytest.raises(InvalidInputError), translated(), engine.connect() as conn:
        conn.execute(sa.text("SELECT CAST(:x AS text)"), {"x": "lone \ud800"})


def test_data_the_driver_refuses_is_invalid_input(engine: sa.Engine) -> None:
    from stores.driver_errors import translated
    from stores.errors import InvalidInputError

    with pytest.raises(InvalidInputError), translated(), engine.connect() as conn:
        conn.execute(sa.text("SELECT CAST(:x AS text)"), {"x": "nul \x00 inside"})

"""What only the PostgreSQL memory store has: transactions and lost connections."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from stores.errors import StoreError, StoreUnavailableError
from stores.memory import Entity, Episode, PostgresMemoryStore
from stores.postgres.engine import create_engine
from tests.integration.test_config_pg import blocked_backend, in_thread, sql

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = create_engine(database_url, pool_size=4)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> PostgresMemoryStore:
    return PostgresMemoryStore(engine)


def batch(tenant: UUID, agent: UUID, n: int) -> list[Episode]:
    return [Episode(tenant_id=tenant, agent_id=agent, content=f"e{i}") for i in range(n)]


def test_a_batch_with_one_refused_row_writes_nothing(
    store: PostgresMemoryStore, engine: sa.Engine
) -> None:
    tenant, agent = uuid4(), uuid4()
    sql(
        engine,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.content = 'e3' THEN RAISE EXCEPTION 'row refused'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON episodes FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    with pytest.raises(StoreError, match="row refused"):
        store.add_episodes(batch(tenant, agent, 5))
    assert store.list_episodes(tenant, agent).items == []


def test_a_connection_killed_mid_batch_writes_nothing_and_the_store_recovers(
    store: PostgresMemoryStore, engine: sa.Engine
) -> None:
    tenant, agent = uuid4(), uuid4()
    sql(
        engine,
        "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.content = 'e2' THEN PERFORM pg_advisory_xact_lock(77); END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER hold BEFORE INSERT ON episodes FOR EACH ROW EXECUTE FUNCTION hold()",
    )
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(77)"))
        thread, out = in_thread(lambda: store.add_episodes(batch(tenant, agent, 4)))
        pid = blocked_backend(engine)
        holder.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        thread.join(10)
        holder.execute(sa.text("SELECT pg_advisory_unlock(77)"))
        holder.commit()
    assert isinstance(out.get("error"), StoreUnavailableError), out
    assert store.list_episodes(tenant, agent).items == []
    assert len(store.add_episodes(batch(tenant, agent, 4))) == 4
    assert len(store.list_episodes(tenant, agent).items) == 4


def test_a_failing_customer_erasure_erases_nothing(
    store: PostgresMemoryStore, engine: sa.Engine
) -> None:
    tenant, agent, customer = uuid4(), uuid4(), uuid4()
    store.add_episode(
        Episode(tenant_id=tenant, agent_id=agent, content="x", customer_profile_id=customer)
    )
    store.add_entity(
        Entity(
            tenant_id=tenant,
            agent_id=agent,
            name="n",
            entity_type="t",
            customer_profile_id=customer,
        )
    )
    sql(
        engine,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'entity delete refused'; END $$",
        "CREATE TRIGGER refuse BEFORE DELETE ON entities FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    with pytest.raises(StoreError, match="entity delete refused"):
        store.delete_customer_memory(tenant, customer)
    assert len(store.list_episodes(tenant, agent, customer_profile_id=customer).items) == 1
    sql(engine, "DROP TRIGGER refuse ON entities")
    assert store.delete_customer_memory(tenant, customer) == 2

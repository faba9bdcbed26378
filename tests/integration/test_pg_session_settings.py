"""hearth's PostgreSQL sessions run with JIT off: its statements are short, and a vector
search's inflated cost estimate would otherwise have each one compiled first."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from stores.postgres.engine import create_engine, normalize_url
from stores.postgres.store import PostgresStore
from stores.postgres.vector_index import VectorSearchPolicy

pytestmark = pytest.mark.postgres

SHOW_JIT = sa.text("SHOW jit")


def test_connections_of_an_engine_hearth_makes_have_jit_off_even_after_a_rollback(
    pg_server: str,
) -> None:
    engine = create_engine(pg_server)
    try:
        with engine.connect() as conn:
            assert conn.execute(SHOW_JIT).scalar_one() == "off"
            conn.rollback()
            assert conn.execute(SHOW_JIT).scalar_one() == "off"
        with engine.connect() as conn:  # the same connection, back from the pool
            assert conn.execute(SHOW_JIT).scalar_one() == "off"
    finally:
        engine.dispose()


def test_a_store_given_an_engine_turns_jit_off_for_its_new_connections(pg_server: str) -> None:
    plain = sa.create_engine(normalize_url(pg_server))
    try:
        with plain.connect() as conn:
            conn.execute(sa.text("SET jit = on"))  # as a server whose default is on
            assert conn.execute(SHOW_JIT).scalar_one() == "on"
        plain.dispose()
        PostgresStore(plain)
        PostgresStore(plain)  # a second store on the same engine: still one listener
        with plain.connect() as conn:
            assert conn.execute(SHOW_JIT).scalar_one() == "off"
    finally:
        plain.dispose()


def test_the_index_path_turns_jit_off_for_its_own_statement() -> None:
    assert VectorSearchPolicy().index_settings(10)["jit"] == "off"

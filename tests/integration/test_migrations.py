"""Migrations against a real PostgreSQL: catalog contents, round trips, drift, concurrency."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from stores.postgres.engine import normalize_url
from stores.postgres.schema import build_metadata
from tests import services
from workers import migrations
from workers.cli import app

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    """A brand-new database with nothing of hearth in it."""
    name = services.unique_name("hearth_mig")
    url = services.create_database(pg_server, name)
    try:
        yield url
    finally:
        services.drop_database(pg_server, name)


def _catalog(url: str) -> dict[str, set[str]]:
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = set(
                conn.execute(
                    sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                ).scalars()
            )
            indexes = set(
                conn.execute(
                    sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
                ).scalars()
            )
            constraints = set(
                conn.execute(
                    sa.text(
                        "SELECT conname FROM pg_constraint c JOIN pg_namespace n "
                        "ON n.oid = c.connamespace WHERE n.nspname = 'public'"
                    )
                ).scalars()
            )
            extensions = set(conn.execute(sa.text("SELECT extname FROM pg_extension")).scalars())
    finally:
        engine.dispose()
    return {
        "tables": tables,
        "indexes": indexes,
        "constraints": constraints,
        "extensions": extensions,
    }


def test_single_head() -> None:
    heads = migrations.script_directory().get_heads()
    assert len(heads) == 1


def test_upgrade_from_empty_creates_every_table_index_and_constraint(empty_db: str) -> None:
    migrations.upgrade(empty_db, "head", dimensions=1536)
    cat = _catalog(empty_db)
    md = build_metadata(1536)
    assert set(md.tables) | {migrations.VERSION_TABLE} == cat["tables"]
    expected_indexes = {ix.name for t in md.tables.values() for ix in t.indexes}
    assert expected_indexes <= cat["indexes"]
    expected_constraints = {c.name for t in md.tables.values() for c in t.constraints if c.name}
    # Named CHECK, UNIQUE, FOREIGN KEY and PRIMARY KEY constraints are all in the catalog.
    assert {str(n) for n in expected_constraints} <= cat["constraints"]
    assert "vector" in cat["extensions"]
    assert "ix_episodes_embedding_halfvec" in cat["indexes"]


def test_hnsw_indexes_are_halfvec_cosine_and_vector_columns_have_the_dimension(
    empty_db: str,
) -> None:
    migrations.upgrade(empty_db, "head", dimensions=384)
    engine = sa.create_engine(normalize_url(empty_db), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        defs = dict(
            conn.execute(
                sa.text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'"
                )
            ).all()
        )
        typmods = dict(
            conn.execute(
                sa.text(
                    "SELECT attrelid::regclass::text, atttypmod FROM pg_attribute "
                    "WHERE attname = 'embedding' AND attnum > 0 "
                    "AND attrelid IN ('rules'::regclass, 'scenarios'::regclass, "
                    "'episodes'::regclass)"
                )
            ).all()
        )
    engine.dispose()
    assert set(defs) == {
        "ix_rules_embedding_halfvec",
        "ix_scenarios_embedding_halfvec",
        "ix_episodes_embedding_halfvec",
    }
    assert all("halfvec(384)) halfvec_cosine_ops" in d for d in defs.values()), defs
    assert typmods == {"rules": 384, "scenarios": 384, "episodes": 384}


def test_downgrade_to_base_leaves_nothing_and_upgrade_again_works(empty_db: str) -> None:
    migrations.upgrade(empty_db, "head")
    migrations.downgrade(empty_db, "base")
    cat = _catalog(empty_db)
    assert cat["tables"] == set()
    assert "vector" not in cat["extensions"]
    migrations.upgrade(empty_db, "head")
    assert migrations.status(empty_db).state is migrations.SchemaState.CURRENT


def test_every_revision_downgrades_one_step(empty_db: str) -> None:
    migrations.upgrade(empty_db, "head")
    revs = [rev for rev, _, _ in migrations.history()]
    for rev in reversed(revs[:-1]):
        migrations.downgrade(empty_db, rev)
        assert migrations.current_revision(empty_db) == rev
    migrations.downgrade(empty_db, "base")
    assert migrations.current_revision(empty_db) is None


def test_no_drift_between_schema_and_migrations(empty_db: str) -> None:
    migrations.upgrade(empty_db, "head", dimensions=1536)
    engine = sa.create_engine(normalize_url(empty_db), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "version_table": migrations.VERSION_TABLE,
                "include_object": migrations.include_object,
            },
        )
        diff = compare_metadata(ctx, build_metadata(1536))
    engine.dispose()
    assert diff == []


def test_rows_written_at_previous_revision_survive_upgrade(empty_db: str) -> None:
    revs = [rev for rev, _, _ in migrations.history()]
    migrations.upgrade(empty_db, revs[-2])
    tenant, agent = uuid.uuid4(), uuid.uuid4()
    engine = sa.create_engine(normalize_url(empty_db), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO agents (id, tenant_id, name) VALUES (:a, :t, 'kept')"),
            {"a": agent, "t": tenant},
        )
    migrations.upgrade(empty_db, "head")
    with engine.connect() as conn:
        name = conn.execute(sa.text("SELECT name FROM agents WHERE id = :a"), {"a": agent}).scalar()
    engine.dispose()
    assert name == "kept"


def test_upgrade_twice_is_a_no_op(empty_db: str) -> None:
    migrations.upgrade(empty_db, "head")
    before = _catalog(empty_db)
    migrations.upgrade(empty_db, "head")
    assert _catalog(empty_db) == before
    assert migrations.current_revision(empty_db) == migrations.head_revision()


def test_eight_concurrent_upgrades_all_succeed_and_apply_each_revision_once(empty_db: str) -> None:
    code = (
        "import sys; from workers import migrations; "
        "migrations.upgrade(sys.argv[1], 'head'); print('ok')"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, empty_db],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    failures = [
        (p.returncode, err[-500:])
        for p, (_, err) in zip(procs, results, strict=True)
        if p.returncode != 0
    ]
    assert failures == []
    engine = sa.create_engine(normalize_url(empty_db), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        versions = (
            conn.execute(sa.text(f"SELECT version_num FROM {migrations.VERSION_TABLE}"))
            .scalars()
            .all()
        )
    engine.dispose()
    # A revision applied twice would have failed on "already exists" in one of the processes.
    assert versions == [migrations.head_revision()]


def test_unknown_revision_is_a_clear_error_and_changes_nothing(empty_db: str) -> None:
    with pytest.raises(migrations.MigrationError, match="unknown revision 'nope'"):
        migrations.upgrade(empty_db, "nope")
    assert _catalog(empty_db)["tables"] == set()


def test_dimension_over_the_index_limit_is_refused_before_any_change(empty_db: str) -> None:
    with pytest.raises(migrations.MigrationError, match="above pgvector's HNSW index limit"):
        migrations.upgrade(empty_db, "head", dimensions=4096)
    assert _catalog(empty_db)["tables"] == set()


def test_unreachable_database_is_one_clear_sentence() -> None:
    with pytest.raises(migrations.MigrationError, match="cannot reach the database"):
        migrations.upgrade("postgresql://nobody@127.0.0.1:1/none")
    st = migrations.status("postgresql://nobody@127.0.0.1:1/none")
    assert st.state is migrations.SchemaState.UNREACHABLE


def test_status_reports_behind_ahead_and_uninitialized(empty_db: str) -> None:
    assert migrations.status(empty_db).state is migrations.SchemaState.UNINITIALIZED
    migrations.upgrade(empty_db, "0003")
    st = migrations.status(empty_db)
    assert st.state is migrations.SchemaState.BEHIND
    assert st.pending == ["0004", "0005", "0006", "0007", "0008", "0009"]
    engine = sa.create_engine(normalize_url(empty_db), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'ffff9999'"))
    engine.dispose()
    assert migrations.status(empty_db).state is migrations.SchemaState.AHEAD


def test_lock_wait_is_bounded_with_a_clear_error(empty_db: str) -> None:
    engine = sa.create_engine(normalize_url(empty_db), poolclass=sa.pool.NullPool)
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": migrations.MIGRATION_LOCK_KEY})
        holder.commit()
        with pytest.raises(migrations.MigrationError, match="held the migration lock"):
            migrations.upgrade(empty_db, "head", lock_wait_seconds=0.3)
    engine.dispose()
    assert _catalog(empty_db)["tables"] == set()


def test_cli_db_check_exit_codes(empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.settings import get_settings

    monkeypatch.setenv("HEARTH_DATABASE_URL", empty_db)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["db", "check"]).exit_code == 1
        up = runner.invoke(app, ["db", "upgrade"])
        assert up.exit_code == 0, up.output
        assert "upgraded base -> " in up.output
        assert runner.invoke(app, ["db", "check"]).exit_code == 0
        status = runner.invoke(app, ["db", "status"])
        assert "state:    current" in status.output
        bad = runner.invoke(app, ["db", "upgrade", "nope"])
        assert bad.exit_code == 1
        monkeypatch.setenv("HEARTH_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
        get_settings.cache_clear()
        assert runner.invoke(app, ["db", "check"]).exit_code == 3
    finally:
        get_settings.cache_clear()

"""Per-tenant vector indexes: made for large tenants only, used by their searches, kept out
of the drift checks, rebuilt when a build was left invalid, dropped when the tenant shrinks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from uuid import UUID, uuid4

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pgvector.psycopg import register_vector
from pydantic import ValidationError
from typer.testing import CliRunner

from stores.postgres import schema
from stores.postgres.engine import create_engine
from stores.postgres.schema import build_metadata
from stores.postgres.tenant_indexes import (
    TENANT_INDEX_LOCK_KEY,
    TenantIndexPolicy,
    apply_changes,
    existing_indexes,
    plan_changes,
    raise_build_memory,
    tenant_index_name,
)
from stores.postgres.vectors import VectorSearcher, VectorSearchPolicy
from tests import services
from workers import migrations
from workers.cli import app
from workers.settings import Settings, get_settings

pytestmark = pytest.mark.postgres

DIMS = 1536
POLICY = TenantIndexPolicy(min_rows=20, min_share=0.25, keep_share=0.1)
EP = schema.episodes


@pytest.fixture
def engine(pg_server: str, pg_template: str) -> Iterator[sa.Engine]:
    name = services.unique_name("hearth_tix")
    url = services.create_database(pg_server, name, template=pg_template)
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        services.drop_database(pg_server, name)


def add_episodes(engine: sa.Engine, tenant: UUID, agent: UUID, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        register_vector(raw)
        with raw.cursor().copy(
            "COPY episodes (id, tenant_id, agent_id, content, embedding) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "uuid", "uuid", "text", "vector"])
            for i in range(count):
                vector = rng.standard_normal(DIMS).astype(np.float32)
                copy.write_row((uuid4(), tenant, agent, f"e{i}", vector))


def summary(engine: sa.Engine) -> set[tuple[str, str, UUID]]:
    with engine.connect() as conn:
        return {(c.action, c.table, c.tenant_id) for c in plan_changes(conn, POLICY)}


def test_only_tenants_over_both_thresholds_get_an_index_and_a_second_run_changes_nothing(
    engine: sa.Engine,
) -> None:
    large, medium, small, few = uuid4(), uuid4(), uuid4(), uuid4()
    agent = uuid4()
    add_episodes(engine, large, agent, 60, 1)
    add_episodes(engine, medium, agent, 30, 2)  # 25 % of 120 rows, at least 20 rows
    add_episodes(engine, small, agent, 18, 3)  # 15 %, under both thresholds
    add_episodes(engine, few, agent, 12, 4)
    assert summary(engine) == {("create", "episodes", large), ("create", "episodes", medium)}
    made = apply_changes(engine, POLICY)
    assert made is not None
    assert {c.index for c in made} == {
        tenant_index_name("episodes", large),
        tenant_index_name("episodes", medium),
    }
    with engine.connect() as conn:
        assert existing_indexes(conn, "episodes") == {large: True, medium: True}
    assert summary(engine) == set()
    assert apply_changes(engine, POLICY) == []


def test_a_large_tenants_search_uses_its_index_and_finds_what_exact_search_finds(
    engine: sa.Engine,
) -> None:
    large, other, agent = uuid4(), uuid4(), uuid4()
    add_episodes(engine, large, agent, 80, 5)
    add_episodes(engine, other, agent, 15, 6)  # under min_rows: no index of its own
    apply_changes(engine, POLICY)
    query = np.random.default_rng(9).standard_normal(DIMS).tolist()
    index_path = VectorSearcher(VectorSearchPolicy(exact_max_rows=0))
    exact_path = VectorSearcher(VectorSearchPolicy(exact_max_rows=10_000))
    for tenant, index in (
        (large, tenant_index_name("episodes", large)),
        (other, schema.vector_index_name("episodes")),
    ):
        where = [EP.c.tenant_id == tenant, EP.c.agent_id == agent]
        with engine.begin() as conn:
            plan, explain = index_path.explain(conn, EP, where, query, 10)
        assert plan.path == "index"
        assert index in explain, re.sub(r"'\[[^]]*\]'", "'[...]'", explain)
        with engine.begin() as conn:
            found = index_path.search(conn, EP, where, query, 10)
        with engine.begin() as conn:
            truth = exact_path.search(conn, EP, where, query, 10)
        assert found.path == "index"
        assert truth.path == "exact"
        assert [r["id"] for r, _ in found.rows] == [r["id"] for r, _ in truth.rows]


def test_tenant_indexes_are_left_out_of_the_drift_checks(engine: sa.Engine) -> None:
    add_episodes(engine, uuid4(), uuid4(), 40, 7)
    apply_changes(engine, POLICY)

    def drift(include: object) -> list[object]:
        with engine.connect() as conn:
            opts: dict[str, object] = {"version_table": migrations.VERSION_TABLE}
            if include is not None:
                opts["include_object"] = include
            return list(compare_metadata(MigrationContext.configure(conn, opts=opts), metadata))

    metadata = build_metadata(DIMS)
    unfiltered = drift(None)
    assert any("ixt_episodes_" in str(d) for d in unfiltered), unfiltered
    assert drift(migrations.include_object) == []


def test_an_index_left_invalid_by_a_failed_build_is_made_again(engine: sa.Engine) -> None:
    tenant = uuid4()
    add_episodes(engine, tenant, uuid4(), 40, 8)
    apply_changes(engine, POLICY)
    name = tenant_index_name("episodes", tenant)
    with engine.begin() as conn:
        # What a CREATE INDEX CONCURRENTLY that failed half-way leaves behind.
        conn.execute(
            sa.text(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = CAST(:n AS regclass)"
            ),
            {"n": name},
        )
        assert existing_indexes(conn, "episodes") == {tenant: False}
    with engine.connect() as conn:
        (change,) = plan_changes(conn, POLICY)
    assert (change.action, change.tenant_id) == ("create", tenant)
    assert "invalid" in change.reason
    apply_changes(engine, POLICY)
    with engine.connect() as conn:
        assert existing_indexes(conn, "episodes") == {tenant: True}


def test_a_tenant_that_shrinks_below_the_keep_share_loses_its_index(engine: sa.Engine) -> None:
    tenant, agent = uuid4(), uuid4()
    add_episodes(engine, tenant, agent, 40, 10)
    apply_changes(engine, POLICY)
    # Still 40 rows but now 40 / 440 = 9 %, below the 10 % that keeps an index.
    add_episodes(engine, uuid4(), agent, 400, 11)
    with engine.connect() as conn:
        changes = plan_changes(conn, POLICY)
    assert [(c.action, c.tenant_id) for c in changes if c.tenant_id == tenant] == [("drop", tenant)]
    apply_changes(engine, POLICY)
    with engine.connect() as conn:
        assert tenant not in existing_indexes(conn, "episodes")


def test_a_tenant_between_the_keep_and_the_make_share_keeps_its_index(engine: sa.Engine) -> None:
    tenant, agent = uuid4(), uuid4()
    add_episodes(engine, tenant, agent, 40, 12)
    apply_changes(engine, POLICY)
    for seed in range(8):  # 40 / 200 = 20 %: under 25 %, over 10 %; the others 10 % each
        add_episodes(engine, uuid4(), agent, 20, 100 + seed)
    assert summary(engine) == set()


def test_a_run_while_another_holds_the_lock_does_nothing(engine: sa.Engine) -> None:
    add_episodes(engine, uuid4(), uuid4(), 40, 14)
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": TENANT_INDEX_LOCK_KEY})
        try:
            assert apply_changes(engine, POLICY) is None
        finally:
            holder.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": TENANT_INDEX_LOCK_KEY})
    with engine.connect() as conn:
        assert existing_indexes(conn, "episodes") == {}


def test_the_command_shows_then_applies(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    tenant = uuid4()
    add_episodes(engine, tenant, uuid4(), 40, 15)
    monkeypatch.setenv("HEARTH_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    runner = CliRunner()
    args = ["db", "tenant-indexes", "--min-rows", "20", "--min-share", "0.25"]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert f"create {tenant_index_name('episodes', tenant)}" in shown.output
    with engine.connect() as conn:
        assert existing_indexes(conn, "episodes") == {}
    applied = runner.invoke(app, [*args, "--apply"])
    assert applied.exit_code == 0, applied.output
    assert "created" in applied.output
    with engine.connect() as conn:
        assert existing_indexes(conn, "episodes") == {tenant: True}
    again = runner.invoke(app, [*args, "--apply"])
    assert "nothing to change" in again.output
    refused = runner.invoke(app, [*args, "--keep-share", "0.5"])
    assert refused.exit_code != 0
    assert "keep_share" in refused.output


@pytest.mark.redis
def test_the_periodic_job_applies_the_settings_policy_and_records_its_run(
    engine: sa.Engine, redis_url: str
) -> None:
    from workers import jobs
    from workers.context import WorkerContext
    from workers.tasks.indexes import index_large_tenants

    large, small = uuid4(), uuid4()
    add_episodes(engine, large, uuid4(), 40, 16)
    add_episodes(engine, small, uuid4(), 5, 17)
    context = WorkerContext.build(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            redis_url=redis_url,
            database_url=engine.url.render_as_string(hide_password=False),
            tenant_index_min_rows=20,
            tenant_index_min_share=0.25,
        )
    )
    try:
        first = index_large_tenants(context)
        second = index_large_tenants(context)
        last = jobs.last_runs(context.redis)[jobs.TENANT_INDEXES]
    finally:
        context.close()

    assert first["status"] == "ok"
    assert first["created"] == [tenant_index_name("episodes", large)]
    assert first["dropped"] == []
    assert second["created"] == second["dropped"] == []
    with engine.connect() as conn:
        assert existing_indexes(conn, "episodes") == {large: True}
    assert last is not None
    assert last.status is jobs.RunStatus.OK


def test_a_keep_share_above_the_make_share_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="HEARTH_TENANT_INDEX_KEEP_SHARE must not exceed"):
        Settings(_env_file=None, tenant_index_min_share=0.2, tenant_index_keep_share=0.3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("before", "want", "after"), [("64MB", "1GB", "1GB"), ("2GB", "1GB", "2GB")]
)
def test_a_build_gets_more_memory_only_where_the_server_gives_less(
    engine: sa.Engine, before: str, want: str, after: str
) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text(f"SET maintenance_work_mem = '{before}'"))
        assert raise_build_memory(conn, want) == after
        assert conn.execute(sa.text("SHOW maintenance_work_mem")).scalar_one() == after


def test_a_run_gives_its_connection_back_with_the_servers_build_memory(
    engine: sa.Engine,
) -> None:
    # One connection: the run's and the next user's are the same.
    one = create_engine(
        engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0
    )
    try:
        with one.connect() as conn:
            default = conn.execute(sa.text("SHOW maintenance_work_mem")).scalar_one()
        tenant = uuid4()
        add_episodes(one, tenant, uuid4(), 30, 7)
        changes = apply_changes(one, POLICY, build_memory="3GB")
        assert [(c.action, c.tenant_id) for c in changes or []] == [("create", tenant)]
        assert existing_indexes_of(one) == {tenant: True}
        with one.connect() as conn:
            assert conn.execute(sa.text("SHOW maintenance_work_mem")).scalar_one() == default
    finally:
        one.dispose()


def existing_indexes_of(engine: sa.Engine) -> dict[UUID, bool]:
    with engine.connect() as conn:
        return existing_indexes(conn, "episodes")


@pytest.mark.parametrize("bad", ["lots", "1 GB", "0MB", "1.5GB", "512"])
def test_a_bad_build_memory_is_refused_by_name_before_anything_is_built(
    engine: sa.Engine, bad: str
) -> None:
    add_episodes(engine, uuid4(), uuid4(), 30, 8)
    with pytest.raises(ValueError, match="build memory") as raised:
        apply_changes(engine, POLICY, build_memory=bad)
    assert repr(bad) in str(raised.value)
    assert existing_indexes_of(engine) == {}
    with pytest.raises(ValidationError, match="tenant_index_build_memory"):
        Settings(tenant_index_build_memory=bad)

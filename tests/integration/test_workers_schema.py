"""The schema check reports each state, and a worker refuses a schema that is behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from stores.postgres.engine import create_engine
from tests import services
from tests.integration.workers_support import BROKER_DB, running_worker, settings, with_db
from workers import jobs, migrations
from workers.app import celery_url
from workers.context import WorkerContext, install_context
from workers.schema_guard import SchemaNotReadyError
from workers.tasks import maintenance

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def empty_database(pg_server: str) -> Iterator[str]:
    name = services.unique_name("hearth_empty")
    url = services.create_database(pg_server, name)
    yield url
    services.drop_database(pg_server, name)


def _behind(url: str) -> str:
    migrations.downgrade(url, "-1")
    return url


def _ahead(url: str) -> str:
    engine = create_engine(url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'f00dcafe'"))
    engine.dispose()
    return url


def _check(redis_url: str, database_url: str) -> dict[str, object]:
    context = WorkerContext.build(settings(redis_url=redis_url, database_url=database_url))
    try:
        return maintenance.check_schema(context)
    finally:
        context.close()


def test_check_reports_current_behind_ahead_uninitialized_and_unreachable(
    redis_url: str, database_url: str, empty_database: str, pg_server: str
) -> None:
    head = migrations.head_revision()
    assert _check(redis_url, database_url)["state"] == "current"
    assert _check(redis_url, empty_database)["state"] == "uninitialized"

    behind = _check(redis_url, _behind(database_url))
    assert behind["state"] == "behind"
    assert behind["head"] == head
    assert behind["pending"] == [head]
    assert "hearth db upgrade" in str(behind["message"])

    assert _check(redis_url, _ahead(database_url))["state"] == "ahead"
    unreachable = _check(redis_url, "postgresql://hearth@127.0.0.1:9/nowhere")
    assert unreachable["state"] == "unreachable"


def test_each_check_is_kept_for_status(redis_url: str, database_url: str) -> None:
    _check(redis_url, _behind(database_url))
    context = WorkerContext.build(settings(redis_url=redis_url))
    try:
        last = jobs.last_runs(context.redis)[jobs.SCHEMA_CHECK]
    finally:
        context.close()
    assert last is not None
    assert last.result["state"] == "behind"


@pytest.mark.celery
def test_a_worker_refuses_a_schema_that_is_behind_and_names_the_fix(
    redis_url: str, database_url: str, redis_server_url: str
) -> None:
    broker = celery_url(with_db(redis_server_url, BROKER_DB))
    app_settings = settings(
        redis_url=redis_url, database_url=_behind(database_url), broker_url=broker
    )

    with pytest.raises(SchemaNotReadyError) as refused, running_worker(app_settings):
        pytest.fail("the worker started on a schema that is behind")

    assert "hearth db upgrade" in str(refused.value)
    assert "HEARTH_ALLOW_BEHIND_SCHEMA" in str(refused.value)


@pytest.mark.celery
def test_a_worker_told_to_allow_a_behind_schema_starts_and_works(
    redis_url: str, database_url: str, redis_server_url: str
) -> None:
    broker = celery_url(with_db(redis_server_url, BROKER_DB))
    app_settings = settings(
        redis_url=redis_url,
        database_url=_behind(database_url),
        broker_url=broker,
        result_backend=broker,
        allow_behind_schema=True,
    )
    context = WorkerContext.build(app_settings)
    previous = install_context(context)
    try:
        with running_worker(app_settings, pool="solo", concurrency=1) as app:
            result = app.send_task(jobs.TASK_NAMES[jobs.SCHEMA_CHECK]).get(timeout=30)
        runs = [run for _, run in jobs.read_new(context.redis, "0-0", block_ms=1)]
    finally:
        install_context(previous)
        context.close()
    assert result["state"] == "behind"
    at_start = [run for run in runs if run.trigger == "worker-start"]
    assert [run.result["state"] for run in at_start] == ["behind"]

"""Fixtures for real servers: PostgreSQL (a database per test from a migrated template),
Redis (flushed per test) and the clock."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from stores.common.clock import ManualClock
from tests import services

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="hearth-run-"))


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test moves it."""
    return ManualClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of the test PostgreSQL server (embedded unless HEARTH_TEST_DATABASE_URL)."""
    with services.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    """The name of a database migrated to head, used as the template for every test's own."""
    from tests.migrate import migrate_to_head

    name = services.unique_name("hearth_tpl")
    url = services.create_database(pg_server, name)
    migrate_to_head(url)
    try:
        yield name
    finally:
        services.drop_database(pg_server, name)


@pytest.fixture
def database_url(pg_server: str, pg_template: str) -> Iterator[str]:
    """The URL of a fresh, migrated database that only this test uses."""
    name = services.unique_name("hearth_t")
    url = services.create_database(pg_server, name, template=pg_template)
    try:
        yield url
    finally:
        services.drop_database(pg_server, name)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """The URL of the test Redis server (embedded unless HEARTH_TEST_REDIS_URL)."""
    with services.redis_server() as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The Redis server's URL, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server_url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A run with no ``-m`` leaves out the ``slow`` tests (``make test-slow`` and CI run them);
    any marker expression decides for itself."""
    if config.option.markexpr:
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]

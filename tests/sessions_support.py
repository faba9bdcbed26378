"""Builds each SessionStore backend for the session tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from stores.common.clock import ManualClock
from stores.postgres.engine import create_engine
from stores.sessions import InMemorySessionStore, SessionStore
from stores.sessions.redis import RedisSessionStore
from tests import services

HOT_TTL = timedelta(minutes=30)
MAX_AGE = timedelta(days=7)
MAX_BYTES = 64 * 1024

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis-redis-cold", id="redis-redis-cold", marks=pytest.mark.redis),
    pytest.param(
        "redis-postgres-cold",
        id="redis-postgres-cold",
        marks=[pytest.mark.redis, pytest.mark.postgres],
    ),
]

CLUSTER_BACKENDS = [
    pytest.param(
        "cluster-redis-cold",
        id="cluster-redis-cold",
        marks=[pytest.mark.redis, pytest.mark.cluster],
    ),
    pytest.param(
        "cluster-postgres-cold",
        id="cluster-postgres-cold",
        marks=[pytest.mark.redis, pytest.mark.postgres, pytest.mark.cluster],
    ),
]
"""The Redis backends again, on a Redis Cluster (needs the fixtures of cluster_support)."""

REDIS_BACKENDS = BACKENDS[1:] + CLUSTER_BACKENDS
"""Every Redis backend, on one Redis and on a cluster: what tests of Redis's own keys run on."""


@contextmanager
def module_database(pg_server: str, pg_template: str) -> Iterator[str]:
    """A migrated database shared by one test module (tests empty its sessions table)."""
    name = services.unique_name("hearth_sessions")
    url = services.create_database(pg_server, name, template=pg_template)
    try:
        yield url
    finally:
        services.drop_database(pg_server, name)


def empty_sessions_table(database_url: str) -> None:
    """Remove every row of the cold tier table."""
    engine = create_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE sessions"))
    finally:
        engine.dispose()


@contextmanager
def build_store(
    backend: str,
    request: pytest.FixtureRequest,
    clock: ManualClock,
    pool_size: int = 5,
    **options: object,
) -> Iterator[SessionStore]:
    """A fresh, empty store of ``backend`` on ``clock``; servers come from fixtures.

    Tests that use a PostgreSQL backend need a ``sessions_database`` fixture in scope.
    """
    settings: dict[str, object] = {
        "hot_ttl": HOT_TTL,
        "max_age": MAX_AGE,
        "clock": clock,
        "max_bytes": MAX_BYTES,
        **options,
    }
    if backend == "memory":
        yield InMemorySessionStore(**settings)  # type: ignore[arg-type]
        return
    if backend.startswith("cluster-"):
        redis_url = request.getfixturevalue("redis_cluster_url")
        backend = backend.replace("cluster-", "redis-", 1)
    else:
        redis_url = request.getfixturevalue("redis_url")
    if backend == "redis-redis-cold":
        store = RedisSessionStore.from_url(redis_url, cold_tier="redis", **settings)  # type: ignore[arg-type]
    elif backend == "redis-postgres-cold":
        database_url = request.getfixturevalue("sessions_database")
        empty_sessions_table(database_url)
        store = RedisSessionStore.from_url(
            redis_url,
            cold_tier="postgres",
            database_url=database_url,
            pool_size=pool_size,
            **settings,  # type: ignore[arg-type]
        )
    else:
        raise ValueError(f"unknown session backend {backend!r}")
    try:
        yield store
    finally:
        store.close()

"""Real servers for the tests: the ``HEARTH_TEST_*_URL`` ones when set, else embedded ones."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from stores.postgres.engine import normalize_url


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the URL of a PostgreSQL server with pgvector available."""
    url = os.environ.get("HEARTH_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from workers.embedded import start_postgres

    with tempfile.TemporaryDirectory(prefix="hearth-pg-") as tmp:
        server = start_postgres(Path(tmp), keep=False, tune=False)
        try:
            yield server.url
        finally:
            server.stop()


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield the redis-py URL of a Redis server."""
    url = os.environ.get("HEARTH_TEST_REDIS_URL")
    if url:
        yield url
        return
    from workers.embedded import start_redis

    with tempfile.TemporaryDirectory(prefix="hearth-redis-") as tmp:
        server = start_redis(Path(tmp))
        try:
            yield server.url
        finally:
            server.stop()


def admin_engine(server_url: str) -> sa.Engine:
    """An autocommit engine on the server's maintenance database, for CREATE/DROP DATABASE."""
    return sa.create_engine(
        normalize_url(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )


def database_url(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``server_url``."""
    return (
        make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)
    )


def unique_name(prefix: str) -> str:
    """A database name no other test (or test run) uses."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """Create database ``name`` (from ``template`` if given) and return its URL."""
    engine = admin_engine(server_url)
    try:
        with engine.connect() as conn:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{suffix}'))
    finally:
        engine.dispose()
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name``, disconnecting whoever still uses it."""
    engine = admin_engine(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()

"""The fixtures pytest-alembic's tests run on: hearth's Alembic configuration and an
Engine on a brand-new database of the test PostgreSQL server, one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.config import Config
from pytest_alembic import Config as PytestAlembicConfig
from pytest_alembic.runner import MigrationContext, runner

from stores.postgres.engine import normalize_url
from tests import services
from workers import migrations

DIMENSIONS = 1536
"""The embedding dimension the migrations create the vector columns with."""


@pytest.fixture
def alembic_config() -> Config:
    """hearth's own Alembic configuration (script location, version table, dimension)."""
    return migrations.alembic_config(dimensions=DIMENSIONS)


@pytest.fixture
def empty_database(pg_server: str) -> Iterator[str]:
    """The URL of a new database with nothing in it, dropped after the test."""
    name = services.unique_name("hearth_alembic")
    url = services.create_database(pg_server, name)
    try:
        yield url
    finally:
        services.drop_database(pg_server, name)


@pytest.fixture
def alembic_engine(empty_database: str) -> Iterator[sa.Engine]:
    """An Engine on an empty database, which pytest-alembic hands to ``env.py``."""
    engine = sa.create_engine(normalize_url(empty_database), poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def alembic_runner(alembic_config: Config, alembic_engine: sa.Engine) -> Iterator[MigrationContext]:
    """pytest-alembic's runner on ``alembic_engine`` (the fixture its plugin would give)."""
    with runner(
        config=PytestAlembicConfig.from_raw_config(alembic_config), engine=alembic_engine
    ) as ctx:
        yield ctx

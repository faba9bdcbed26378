"""``migrations/env.py`` runs on an Engine or a Connection handed over in
``config.attributes["connection"]``, and holds the migration lock either way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import pytest
import sqlalchemy as sa
from alembic import command

from tests.migrations.conftest import DIMENSIONS
from workers import migrations

pytestmark = pytest.mark.postgres


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(f"SELECT version_num FROM {migrations.VERSION_TABLE}")
        ).scalar_one_or_none()


@contextmanager
def _lock_held_elsewhere(engine: sa.Engine) -> Iterator[None]:
    with engine.connect() as other:
        other.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": migrations.MIGRATION_LOCK_KEY})
        try:
            yield
        finally:
            other.execute(
                sa.text("SELECT pg_advisory_unlock(:k)"), {"k": migrations.MIGRATION_LOCK_KEY}
            )


def _on_engine(engine: sa.Engine) -> AbstractContextManager[object]:
    return nullcontext(engine)


def _on_connection(engine: sa.Engine) -> AbstractContextManager[object]:
    return engine.connect()


def _in_transaction(engine: sa.Engine) -> AbstractContextManager[object]:
    return engine.begin()


HANDLES = pytest.mark.parametrize(
    "handle",
    [_on_engine, _on_connection, _in_transaction],
    ids=["engine", "connection", "connection-in-transaction"],
)


@HANDLES
def test_upgrade_runs_on_the_given_handle(
    alembic_engine: sa.Engine, handle: Callable[[sa.Engine], AbstractContextManager[object]]
) -> None:
    cfg = migrations.alembic_config(dimensions=DIMENSIONS)
    with handle(alembic_engine) as given:
        cfg.attributes["connection"] = given
        command.upgrade(cfg, "head")
        if isinstance(given, sa.Connection) and not given.in_transaction():
            given.commit()

    assert _revision(alembic_engine) == migrations.head_revision()


@HANDLES
def test_the_migration_lock_is_taken_on_the_given_handle(
    alembic_engine: sa.Engine, handle: Callable[[sa.Engine], AbstractContextManager[object]]
) -> None:
    cfg = migrations.alembic_config(dimensions=DIMENSIONS, lock_wait_seconds=0.3)

    with _lock_held_elsewhere(alembic_engine), handle(alembic_engine) as given:
        cfg.attributes["connection"] = given
        with pytest.raises(migrations.MigrationError) as info:
            command.upgrade(cfg, "head")

    assert "held the migration lock" in str(info.value)
    with alembic_engine.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        ).scalar_one()
    assert tables == 0


def test_anything_else_is_refused(alembic_engine: sa.Engine) -> None:
    cfg = migrations.alembic_config(dimensions=DIMENSIONS)
    cfg.attributes["connection"] = "postgresql://elsewhere/db"

    with pytest.raises(TypeError, match="Engine or Connection"):
        command.upgrade(cfg, "head")

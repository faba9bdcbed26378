"""Alembic environment for hearth: one advisory lock around every run.

Several instances may start at once and all run ``upgrade head``; Alembic itself takes no
lock, so each run first takes a session-level PostgreSQL advisory lock on the connection it
migrates through (waiting a bounded time), and only then sets ``lock_timeout`` for the DDL
that follows. That connection is one of its own, or one made from the Engine, or the very
Connection, given in ``config.attributes["connection"]``.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import context

from stores.postgres.schema import build_metadata
from workers.migrations import (
    VERSION_TABLE,
    advisory_lock,
    configured_dimensions,
    include_object,
    migration_engine,
)

config = context.config
if config.config_file_name is not None and not config.attributes.get("quiet"):
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = build_metadata(configured_dimensions(config))


def run_migrations_offline() -> None:
    """Emit SQL for the migrations without a database (``alembic upgrade --sql``)."""
    context.configure(
        url=config.attributes.get("url") or config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        version_table=VERSION_TABLE,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations holding the hearth migration lock.

    ``config.attributes["connection"]`` may hold an Engine or a Connection to run on (the
    Alembic cookbook's way of sharing one; pytest-alembic hands over an Engine); without
    it, an engine is made from the configured URL. The lock is taken in every case.
    """
    given = config.attributes.get("connection")
    if isinstance(given, sa.Connection):
        # A transaction the caller opened stays the caller's to commit or roll back.
        with advisory_lock(given, config, caller_transaction=given.in_transaction()):
            _run(given)
        return
    if given is not None and not isinstance(given, sa.Engine):
        raise TypeError(
            'config.attributes["connection"] must be a SQLAlchemy Engine or Connection; '
            f"got {type(given).__name__}"
        )
    engine = given if given is not None else migration_engine(config)
    try:
        with engine.connect() as conn, advisory_lock(conn, config):
            _run(conn)
    finally:
        if given is None:
            engine.dispose()


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        transaction_per_migration=True,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()
    logging.getLogger("alembic").debug("migrations done")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""Alembic environment for hearth: one advisory lock around every run.

Several instances may start at once and all run ``upgrade head``; Alembic itself takes no
lock, so each run first takes a session-level PostgreSQL advisory lock on its own connection
(waiting a bounded time), and only then sets ``lock_timeout`` for the DDL that follows.
"""

from __future__ import annotations

import logging

from alembic import context

from stores.postgres.schema import build_metadata
from workers.migrations import VERSION_TABLE, advisory_lock, configured_dimensions, migration_engine

config = context.config
if config.config_file_name is not None and not config.attributes.get("quiet"):
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = build_metadata(configured_dimensions(config))


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave out objects hearth does not own (the version table, other apps' tables)."""
    return not (type_ == "table" and reflected and compare_to is None)


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
    """Run the migrations holding the hearth migration lock."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = migration_engine(config)
    try:
        with engine.connect() as conn, advisory_lock(conn, config):
            _run(conn)
    finally:
        engine.dispose()


def _run(connection: object) -> None:
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

"""Schema migrations: Alembic driven from code, one advisory lock, readable failures.

``hearth db ...`` and the workers call these; plain ``alembic`` works too (alembic.ini).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import exc as sa_exc

from stores.postgres.engine import normalize_url
from stores.postgres.schema import MAX_INDEXED_DIMENSIONS
from stores.postgres.tenant_indexes import is_tenant_index

VERSION_TABLE = "hearth_alembic_version"
"""hearth's own Alembic version table, so it never collides with another app's."""

MIGRATION_LOCK_KEY = 0x6865617274680001
"""The advisory lock every migration run holds (b"hearth" + 1)."""

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCK_WAIT_SECONDS = 120.0
DEFAULT_LOCK_TIMEOUT = "30s"


class _WithoutContextLines(logging.Filter):
    """Drops Alembic's "Context impl ..." and "Will assume ..." lines: every schema check
    (at each worker start, every few minutes) would log them again."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl ", "Will assume "))


logging.getLogger("alembic.runtime.migration").addFilter(_WithoutContextLines())


class MigrationError(RuntimeError):
    """A migration command could not run; the message says why and what to do."""


class SchemaState(StrEnum):
    """How a database's schema compares with the migrations this code carries."""

    CURRENT = "current"
    BEHIND = "behind"
    AHEAD = "ahead"
    UNINITIALIZED = "uninitialized"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class SchemaStatus:
    """The result of a schema check."""

    state: SchemaState
    current: str | None
    head: str
    pending: list[str]
    detail: str = ""


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """What the drift checks compare: not objects hearth does not own (the version table,
    other apps' tables), nor the per-tenant vector indexes hearth makes at run time
    (``stores/postgres/tenant_indexes.py``)."""
    if type_ == "index" and is_tenant_index(name):
        return False
    return not (type_ == "table" and reflected and compare_to is None)


def alembic_config(
    url: str | None = None,
    *,
    dimensions: int | None = None,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    quiet: bool = True,
) -> Config:
    """An Alembic Config for hearth's migrations against ``url``."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    if url is not None:
        cfg.attributes["url"] = normalize_url(url)
    if dimensions is not None:
        cfg.attributes["embedding_dimensions"] = dimensions
    cfg.attributes["lock_wait_seconds"] = lock_wait_seconds
    cfg.attributes["quiet"] = quiet
    return cfg


def configured_dimensions(cfg: Config) -> int:
    """The embedding dimension the tables are (to be) created with."""
    dims = cfg.attributes.get("embedding_dimensions")
    if dims is None:
        from workers.settings import get_settings

        dims = get_settings().embedding_dimensions
    dims = int(dims)
    if not 1 <= dims <= MAX_INDEXED_DIMENSIONS:
        raise MigrationError(
            f"embedding dimension {dims} is above pgvector's HNSW index limit of "
            f"{MAX_INDEXED_DIMENSIONS}; set HEARTH_EMBEDDING_DIMENSIONS between 1 and "
            f"{MAX_INDEXED_DIMENSIONS}"
        )
    return dims


def migration_engine(cfg: Config) -> sa.Engine:
    """A pool-less engine for one migration run."""
    url = cfg.attributes.get("url") or cfg.get_main_option("sqlalchemy.url")
    if not url:
        from workers.settings import get_settings

        url = get_settings().database_url
    if not url:
        raise MigrationError("no database configured: set HEARTH_DATABASE_URL")
    return sa.create_engine(
        normalize_url(url), poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 10}
    )


@contextlib.contextmanager
def advisory_lock(
    conn: sa.Connection, cfg: Config, *, caller_transaction: bool = False
) -> Iterator[None]:
    """Hold hearth's session-level migration lock on ``conn`` for the duration of the block.

    With ``caller_transaction`` the connection's open transaction belongs to the caller (a
    connection handed to ``env.py`` inside ``engine.begin()``): it is never committed nor
    rolled back here, so the lock and ``lock_timeout`` join it and the caller decides.
    """
    wait = float(cfg.attributes.get("lock_wait_seconds", DEFAULT_LOCK_WAIT_SECONDS))

    def commit() -> None:
        if not caller_transaction:
            conn.commit()

    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        if got.scalar():
            break
        commit()
        if time.monotonic() >= deadline:
            raise MigrationError(
                f"another process held the migration lock for over {wait:.0f} s; "
                "if no migration is running, look for a stuck session in pg_locks "
                f"(objid {MIGRATION_LOCK_KEY & 0xFFFFFFFF})"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    # Only now: a lock_timeout set before would have made the wait above fail early.
    conn.execute(sa.text(f"SET lock_timeout = '{DEFAULT_LOCK_TIMEOUT}'"))
    commit()
    try:
        yield
    finally:
        with contextlib.suppress(sa_exc.SQLAlchemyError):
            if conn.in_transaction() and not caller_transaction:
                conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            commit()


def script_directory() -> ScriptDirectory:
    """hearth's migration scripts."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this code carries."""
    head = script_directory().get_current_head()
    assert head is not None, "hearth ships at least one migration"
    return head


def _connect_check(url: str) -> sa.Engine:
    engine = sa.create_engine(
        normalize_url(url), poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 10}
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa_exc.SQLAlchemyError as exc:
        engine.dispose()
        raise MigrationError(f"cannot reach the database: {_first_line(exc)}") from exc
    return engine


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _require_pgvector(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        available = conn.execute(
            sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
    if not available:
        raise MigrationError(
            "the PostgreSQL server has no pgvector extension installed; install pgvector "
            "(https://github.com/pgvector/pgvector) or use the embedded server"
        )


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None when never migrated)."""
    engine = _connect_check(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()
    finally:
        engine.dispose()


def _resolve(rev: str) -> None:
    if rev in ("head", "heads", "base") or rev.startswith(("+", "-")):
        return
    try:
        found = script_directory().get_revision(rev)
    except CommandError as exc:
        raise MigrationError(f"unknown revision {rev!r}; `hearth db history` lists them") from exc
    except Exception as exc:  # alembic raises several resolution errors
        raise MigrationError(f"unknown revision {rev!r}; `hearth db history` lists them") from exc
    if found is None:
        raise MigrationError(f"unknown revision {rev!r}; `hearth db history` lists them")


def upgrade(
    url: str,
    revision: str = "head",
    *,
    dimensions: int | None = None,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
) -> None:
    """Upgrade the database at ``url`` to ``revision`` (idempotent; safe to run concurrently)."""
    _resolve(revision)
    cfg = alembic_config(url, dimensions=dimensions, lock_wait_seconds=lock_wait_seconds)
    configured_dimensions(cfg)
    engine = _connect_check(url)
    try:
        _require_pgvector(engine)
    finally:
        engine.dispose()
    _run_command(command.upgrade, cfg, revision)


def downgrade(
    url: str, revision: str, *, lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS
) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` removes everything of hearth)."""
    _resolve(revision)
    cfg = alembic_config(url, lock_wait_seconds=lock_wait_seconds)
    engine = _connect_check(url)
    try:
        _run_command(command.downgrade, cfg, revision)
        if revision == "base":
            # Alembic keeps its version table at base; nothing of hearth should remain.
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{VERSION_TABLE}"'))
    finally:
        engine.dispose()


def _run_command(fn: Any, cfg: Config, revision: str) -> None:
    try:
        fn(cfg, revision)
    except MigrationError:
        raise
    except CommandError as exc:
        raise MigrationError(str(exc)) from exc
    except sa_exc.SQLAlchemyError as exc:
        raise MigrationError(f"migration failed: {_first_line(exc)}") from exc


def pending_revisions(current: str | None) -> list[str]:
    """Revisions between ``current`` and head, oldest first."""
    script = script_directory()
    revs = [r.revision for r in script.iterate_revisions("head", current or "base")]
    return list(reversed(revs))


def status(url: str) -> SchemaStatus:
    """Compare the database's revision with head; never raises for an unreachable server."""
    head = head_revision()
    try:
        current = current_revision(url)
    except MigrationError as exc:
        return SchemaStatus(SchemaState.UNREACHABLE, None, head, [], str(exc))
    if current is None:
        return SchemaStatus(SchemaState.UNINITIALIZED, None, head, pending_revisions(None))
    if current == head:
        return SchemaStatus(SchemaState.CURRENT, current, head, [])
    known = {r.revision for r in script_directory().walk_revisions()}
    if current not in known:
        return SchemaStatus(
            SchemaState.AHEAD,
            current,
            head,
            [],
            f"database is at {current}, which this code does not know (newer code migrated it)",
        )
    return SchemaStatus(SchemaState.BEHIND, current, head, pending_revisions(current))


def history() -> list[tuple[str, str | None, str]]:
    """Every revision as (revision, down_revision, message), oldest first."""
    revs = list(script_directory().walk_revisions())
    out = []
    for r in reversed(revs):
        down = (
            r.down_revision
            if isinstance(r.down_revision, str) or r.down_revision is None
            else ",".join(r.down_revision)
        )
        out.append((r.revision, down, (r.doc or "").strip()))
    return out


def embedding_dimensions() -> int:
    """The dimension vector columns are created with, for use inside migration scripts."""
    from alembic import context

    return configured_dimensions(context.config)

"""One SQLAlchemy engine per process, on psycopg 3, and driver-error translation."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from stores.errors import (
    InvalidInputError,
)

_SCHEME = re.compile(r"^(postgres|postgresql)(\+[a-z0-9_]+)?://")


def normalize_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver, accepting every common spelling.

    ``postgres://``, ``postgresql://`` and ``postgresql+psycopg2://`` all become
    ``postgresql+psycopg://``; pgserver's ``?host=/socket/dir`` form is kept as it is.
    """
    match = _SCHEME.match(url)
    if not match:
        raise InvalidInputError(
            f"database URL must start with postgresql://; got {url.split('://')[0]}://…",
            field="database_url",
        )
    return "postgresql+psycopg://" + url[match.end() :]


def create_engine(
    url: str, *, pool_size: int = 5, max_overflow: int = 10, **kwargs: Any
) -> sa.Engine:
    """Create an engine for ``url`` with pre-ping, sane timeouts and hearth's session
    settings (:func:`tune_sessions`)."""
    connect_args = {"connect_timeout": 10, **kwargs.pop("connect_args", {})}
    engine = sa.create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        connect_args=connect_args,
        **kwargs,
    )
    return tune_sessions(engine)


def tune_sessions(engine: sa.Engine) -> sa.Engine:
    """Give every connection ``engine`` opens from now on hearth's session settings: JIT
    off (see :func:`_tune`). Stores call it on engines they are given, too; calling it again
    changes nothing."""
    if not sa.event.contains(engine, "connect", _tune):
        sa.event.listen(engine, "connect", _tune)
    return engine


def _tune(dbapi_connection: Any, _record: Any) -> None:
    # PostgreSQL JIT-compiles a statement whose estimated cost is high. hearth's statements
    # are short, and a vector search's estimate is inflated on purpose (enable_sort = off
    # keeps its ORDER BY on the HNSW scan): on PostgreSQL 15 with LLVM, compiling took
    # 180 ms of a search that ran in 25 ms. Once per connection, so no round trip per call.
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_connection.commit()

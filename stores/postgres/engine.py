"""One SQLAlchemy engine per process, on psycopg 3, and driver-error translation."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from stores.errors import (
    DuplicateError,
    InvalidInputError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
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


_FK_FIELD = re.compile(r"Key \((?P<cols>[^)]+)\)=")


def translate(exc: BaseException) -> StoreError:
    """Map a SQLAlchemy/psycopg error to the store error tree (the cause is kept by caller)."""
    # psycopg errors raised outside SQLAlchemy (pgvector's type lookup) carry no ``orig``.
    orig = exc if isinstance(exc, psycopg.Error) else getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or ""
    message = str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else ""
    if isinstance(
        exc,
        (
            sa_exc.OperationalError,
            sa_exc.InterfaceError,
            psycopg.OperationalError,
            psycopg.InterfaceError,
        ),
    ) or sqlstate.startswith(("08", "57P")):
        if sqlstate == "57014":  # statement timeout / cancelled
            return StoreUnavailableError(f"database query timed out: {message}")
        return StoreUnavailableError(f"database unavailable: {message}")
    if isinstance(exc, UnicodeError) or isinstance(orig, UnicodeError):
        # Text with no UTF-8 form (a lone surrogate), refused by the driver.
        return InvalidInputError(f"invalid input: {exc}")
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection freed up in time
        return StoreUnavailableError(f"database busy, no connection available: {message}")
    if isinstance(exc, OSError):
        return StoreUnavailableError(f"database unreachable: {message}")
    if isinstance(exc, sa_exc.DBAPIError) and getattr(exc, "connection_invalidated", False):
        return StoreUnavailableError(f"database connection lost: {message}")
    if sqlstate == "23505":
        return DuplicateError(f"already exists: {_detail(orig) or message}")
    if sqlstate == "23503":
        detail = _detail(orig)
        found = _FK_FIELD.search(detail or "")
        field = found.group("cols") if found else None
        return NotFoundError(f"referenced item does not exist ({field or message})")
    if sqlstate in ("23514", "22P02", "22023", "22001", "23502", "22003", "22007", "22008"):
        return InvalidInputError(f"invalid input: {message}")
    if not sqlstate and isinstance(orig, psycopg.DataError):
        # Refused by the driver before it reached the server (a NUL in text, say).
        return InvalidInputError(f"invalid input: {message}")
    if sqlstate in ("40001", "40P01", "55P03"):
        return StoreUnavailableError(f"database busy, retry: {message}")
    if isinstance(exc, StoreError):
        return exc
    return StoreError(f"database error: {message}")


def _detail(orig: Any) -> str | None:
    diag = getattr(orig, "diag", None)
    return getattr(diag, "message_detail", None) if diag is not None else None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Translate driver errors raised inside the block, keeping the original as cause."""
    try:
        yield
    except StoreError:
        raise
    except (sa_exc.SQLAlchemyError, psycopg.Error, OSError, UnicodeError) as exc:
        raise translate(exc) from exc

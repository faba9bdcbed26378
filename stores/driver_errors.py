r"""How driver errors become store errors: one policy per driver, applied at each store's edge.

Every PostgreSQL and Redis store runs each public method inside its driver's policy
(:class:`TranslatedEdge`), so callers see only the error tree of ``stores.errors``, with the
driver's exception kept as ``__cause__``. Code inside a store may translate earlier, where it
must tell errors apart (a batch going on past a node that is down); it uses the same policy.

=========  ==============================================================  =====================
driver     error                                                           store error
=========  ==============================================================  =====================
psycopg,   connection lost or refused, admin shutdown (SQLSTATE 08…,       StoreUnavailableError
SQLAlchemy 57P…), OSError, pool timeout, invalidated connection
\          statement timeout (57014); serialization failure, deadlock,     StoreUnavailableError
           lock not available (40001, 40P01, 55P03)
\          unique violation (23505)                                        DuplicateError
\          foreign key violation (23503)                                   NotFoundError
\          check, not-null, bad text or number (23514, 23502, 22…), text   InvalidInputError
           the driver refuses
\          anything else                                                   StoreError
redis-py   connection error, timeout                                       StoreUnavailableError
\          cluster: slot not covered, cluster down, TRYAGAIN, ASK given    StoreUnavailableError
           up, no free connection
\          replies OOM, READONLY, MASTERDOWN, LOADING, CLUSTERDOWN, BUSY;  StoreUnavailableError
           a script reaching a key a slot migration moved
\          any other error reply (a wrong type, a script error)            StoreError
=========  ==============================================================  =====================

A StoreUnavailableError may succeed if tried again later; the others will not.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import psycopg
import redis
from redis.exceptions import RedisClusterException
from sqlalchemy import exc as sa_exc

from stores.errors import (
    DuplicateError,
    InvalidInputError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)

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
    """Turn PostgreSQL driver errors raised inside the block into store errors, cause kept."""
    try:
        yield
    except StoreError:
        raise
    except (sa_exc.SQLAlchemyError, psycopg.Error, OSError, UnicodeError) as exc:
        raise translate(exc) from exc


# Server replies meaning "not now" rather than "wrong request". The last one is a script
# that reached a key a slot migration has already moved to another node.
_BUSY_REPLY = re.compile(
    r"\b(OOM|READONLY|MASTERDOWN|LOADING|CLUSTERDOWN|TRYAGAIN|BUSY)\b|non local key"
)

_CLUSTER_UNAVAILABLE = (
    redis.exceptions.ClusterError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.AskError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.MaxConnectionsError,
)


def translate_redis(exc: redis.RedisError | RedisClusterException) -> StoreError:
    """The store error for a redis-py error (the caller raises it from ``exc``)."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return StoreUnavailableError(f"Redis unavailable: {exc}")
    if isinstance(exc, _CLUSTER_UNAVAILABLE) or "cannot be connected" in str(exc):
        # A slot without a reachable master, a cluster that is re-forming, or a slot
        # migration the client gave up following: the request may succeed later.
        return StoreUnavailableError(f"Redis Cluster cannot serve the request now: {exc}")
    if isinstance(exc, redis.ResponseError) and _BUSY_REPLY.search(str(exc)):
        return StoreUnavailableError(f"Redis cannot serve the request now: {exc}")
    return StoreError(f"Redis error: {exc}")


@contextlib.contextmanager
def redis_translated(doing: str = "") -> Iterator[None]:
    """Turn redis-py errors raised inside the block into store errors, cause kept;
    ``doing`` ("cannot record the run", say) leads the message."""
    try:
        yield
    except (redis.RedisError, RedisClusterException) as exc:
        error = translate_redis(exc)
        if doing:
            error = type(error)(f"{doing}: {error}")
        raise error from exc


class TranslatedEdge:
    """Runs every public method of a subclass inside the subclass's driver policy
    (:attr:`_driver_errors`), inherited methods and classmethods included: a method that
    forgets to translate cannot leak a driver error. A generator method is translated as
    it is iterated, and a context-manager method (``@contextmanager``) over its whole
    ``with`` block. Properties are not wrapped: each translates for itself."""

    _driver_errors: ClassVar[Callable[[], AbstractContextManager[None]]]
    """The policy: :func:`translated` (PostgreSQL) or :func:`redis_translated`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        policy = cls._driver_errors
        for name in dir(cls):
            if name.startswith("_"):
                continue
            value = inspect.getattr_static(cls, name)
            if isinstance(value, classmethod):
                if getattr(value.__func__, "__edge__", None) is not policy:
                    setattr(cls, name, classmethod(_at_edge(value.__func__, policy)))
            elif inspect.isfunction(value) and getattr(value, "__edge__", None) is not policy:
                setattr(cls, name, _at_edge(value, policy))


def _at_edge(
    func: Callable[..., Any], policy: Callable[[], AbstractContextManager[None]]
) -> Callable[..., Any]:
    wrapped: Callable[..., Any]
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with policy():
                yield from func(*args, **kwargs)

        wrapped = generator
    elif inspect.isgeneratorfunction(getattr(func, "__wrapped__", None)):
        # A @contextmanager method: the policy must hold over the caller's block and the
        # manager's exit (a commit, say), not only over building the manager.

        @contextlib.contextmanager
        def managed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with policy(), func(*args, **kwargs) as value:
                yield value

        wrapped = functools.wraps(func)(managed)
    else:

        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            with policy():
                return func(*args, **kwargs)

        wrapped = call
    # Marked, so that a subclass of an edged class does not wrap it twice.
    setattr(wrapped, "__edge__", policy)  # noqa: B010
    return wrapped

"""The stores and clients one worker process uses, built from settings once per process.

Nothing here connects at import: the Celery app module is imported by the parent of a prefork
pool, and sockets opened there would be shared by every forked child. Each process builds its
context the first time a task asks for it; ``reset_after_fork`` drops an inherited one without
closing its sockets (they belong to the parent), and ``close_context`` releases it at shutdown.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from stores.common.clock import Clock, utc_now
from stores.sessions.clients import Client, from_url
from workers.metrics.instrument import instrument_store
from workers.settings import Settings, get_settings

if TYPE_CHECKING:
    from stores.config import ConfigStore
    from stores.memory import MemoryStore
    from stores.sessions import SessionStore

DEFAULT_LOCK_GRACE_SECONDS = 30.0
"""The expiry of a periodic job's lock: its heartbeat renews it while the holder lives, so
this is how long a crashed holder's lock keeps the next run out."""


class NotConfiguredError(RuntimeError):
    """A server the workers need is not configured; the message names the variable."""


def cold_tier(settings: Settings) -> Literal["postgres", "redis"]:
    """The session cold tier: the configured one, else postgres when a database is set."""
    if settings.session_cold_tier:
        return settings.session_cold_tier
    return "postgres" if settings.database_url else "redis"


def build_session_store(settings: Settings, *, clock: Clock = utc_now) -> SessionStore:
    """The two-tier session store the settings describe."""
    from stores.sessions.redis import RedisSessionStore

    if not settings.redis_url:
        raise NotConfiguredError("no Redis configured: set HEARTH_REDIS_URL (or run `hearth up`)")
    tier = cold_tier(settings)
    if tier == "postgres" and not settings.database_url:
        raise NotConfiguredError(
            "the postgres cold tier needs a database: set HEARTH_DATABASE_URL "
            "or HEARTH_SESSION_COLD_TIER=redis"
        )
    return RedisSessionStore.from_url(
        settings.redis_url,
        hot_ttl=settings.hot_ttl,
        max_age=settings.max_age,
        cold_tier=tier,
        database_url=settings.database_url if tier == "postgres" else None,
        clock=clock,
        max_bytes=settings.session_max_bytes,
    )


def build_config_store(settings: Settings, *, clock: Clock = utc_now) -> ConfigStore:
    """The PostgreSQL configuration store (migration plans live there)."""
    from stores.config.postgres import PostgresConfigStore

    if not settings.database_url:
        raise NotConfiguredError("no database configured: set HEARTH_DATABASE_URL")
    return PostgresConfigStore.from_url(
        settings.database_url,
        dimensions=settings.embedding_dimensions,
        clock=clock,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


def build_memory_store(settings: Settings, *, clock: Clock = utc_now) -> MemoryStore:
    """The PostgreSQL memory store (the embedding backfill writes episodes there)."""
    from stores.memory.postgres import PostgresMemoryStore

    if not settings.database_url:
        raise NotConfiguredError("no database configured: set HEARTH_DATABASE_URL")
    return PostgresMemoryStore.from_url(
        settings.database_url,
        dimensions=settings.embedding_dimensions,
        clock=clock,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


def redis_client(settings: Settings) -> Client:
    """A client of the sessions Redis (one server or a Redis Cluster), which also keeps the
    workers' locks and job runs."""
    if not settings.redis_url:
        raise NotConfiguredError("no Redis configured: set HEARTH_REDIS_URL (or run `hearth up`)")
    return from_url(settings.redis_url, socket_timeout=10)


@dataclass
class WorkerContext:
    """Everything a task needs: settings, the Redis client, and the stores (built lazily)."""

    settings: Settings
    redis: Client
    clock: Clock = utc_now
    lock_grace_seconds: float = DEFAULT_LOCK_GRACE_SECONDS
    _sessions: SessionStore | None = None
    _config: ConfigStore | None = None
    _memory: MemoryStore | None = None
    pid: int = field(default_factory=os.getpid)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        sessions: SessionStore | None = None,
        config: ConfigStore | None = None,
        memory: MemoryStore | None = None,
        lock_grace_seconds: float = DEFAULT_LOCK_GRACE_SECONDS,
    ) -> WorkerContext:
        """A context for ``settings``; given stores are used as they are (and closed with it)."""
        return cls(
            settings=settings,
            redis=redis_client(settings),
            clock=clock,
            lock_grace_seconds=lock_grace_seconds,
            _sessions=sessions,
            _config=config,
            _memory=memory,
        )

    @property
    def sessions(self) -> SessionStore:
        """The session store, built on first use."""
        with self._guard:
            if self._sessions is None:
                self._sessions = build_session_store(self.settings, clock=self.clock)
            return instrument_store(self._sessions, "sessions")

    @property
    def config(self) -> ConfigStore:
        """The configuration store, built on first use."""
        with self._guard:
            if self._config is None:
                self._config = build_config_store(self.settings, clock=self.clock)
            return instrument_store(self._config, "config")

    @property
    def memory(self) -> MemoryStore:
        """The memory store, built on first use."""
        with self._guard:
            if self._memory is None:
                self._memory = build_memory_store(self.settings, clock=self.clock)
            return instrument_store(self._memory, "memory")

    def close(self) -> None:
        """Close the stores and the Redis client; errors at shutdown are not worth raising."""
        with self._guard:
            for store in (self._sessions, self._config, self._memory):
                close = getattr(store, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()
            self._sessions = None
            self._config = None
            self._memory = None
            with contextlib.suppress(Exception):
                self.redis.close()


_lock = threading.Lock()
_context: WorkerContext | None = None


def get_context(settings: Settings | None = None) -> WorkerContext:
    """This process's context, built from ``settings`` (default: the environment) on first use."""
    global _context
    with _lock:
        if _context is None:
            _context = WorkerContext.build(settings or get_settings())
        return _context


def install_context(context: WorkerContext | None) -> WorkerContext | None:
    """Make ``context`` this process's context (tests, ``hearth up``); returns the previous."""
    global _context
    with _lock:
        previous, _context = _context, context
        return previous


def reset_after_fork() -> None:
    """Forget a context inherited from the parent process without touching its sockets.

    Celery sends ``worker_process_init`` from the solo pool too, in the process that built
    the context: a context of this very process is kept.
    """
    global _context
    with _lock:
        if _context is not None and _context.pid != os.getpid():
            _context = None


def close_context() -> None:
    """Close and forget this process's context."""
    global _context
    with _lock:
        context, _context = _context, None
    if context is not None:
        context.close()

"""Where the servers are: configured URLs, or embedded servers started for this process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from workers.embedded import EmbeddedPostgres, EmbeddedRedis, start_postgres, start_redis
from workers.settings import Settings


@dataclass
class Servers:
    """The URLs hearth uses, and the embedded servers this process started (if any)."""

    database_url: str
    redis_url: str | None = None
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = field(default_factory=list)

    @property
    def broker_url(self) -> str | None:
        """The Celery broker URL: the configured one, else the sessions Redis."""
        for server in self.embedded:
            if isinstance(server, EmbeddedRedis):
                return server.celery_url
        return self.redis_url


@contextlib.contextmanager
def servers(settings: Settings, *, need_redis: bool = True) -> Iterator[Servers]:
    """Yield every server URL, starting embedded servers for those not configured."""
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        if settings.database_url:
            db_url = settings.database_url
        else:
            pg = start_postgres(settings.data_dir / "postgres")
            started.append(pg)
            db_url = pg.url
        redis_url = settings.redis_url
        if need_redis and not redis_url:
            rd = start_redis(settings.data_dir / "redis")
            started.append(rd)
            redis_url = rd.url
        yield Servers(database_url=db_url, redis_url=redis_url, embedded=started)
    finally:
        for server in reversed(started):
            server.stop()


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """Yield the database URL, starting the embedded PostgreSQL when none is configured."""
    with servers(settings, need_redis=False) as found:
        yield found.database_url

"""What a sweep would do, counted without doing it (``hearth sweep ... --dry-run``).

Reads the session store's documented key layout (``stores.sessions.keys``) and the
``sessions`` table: the same sorted sets and column the sweeps themselves select from.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import redis
import sqlalchemy as sa

from stores.postgres import schema
from stores.postgres.engine import create_engine, translated
from stores.sessions import keys


def _tenant_bases(client: redis.Redis) -> list[str]:
    bases = []
    for member in client.sscan_iter(keys.TENANTS, count=1000):
        tenant = member.decode() if isinstance(member, bytes) else str(member)
        bases.append(keys.base(UUID(tenant)))
    return bases


def count_idle(client: redis.Redis, *, hot_ttl: timedelta, now: datetime) -> int:
    """Hot sessions idle for ``hot_ttl`` or longer: what the demotion sweep would move."""
    cutoff = keys.micros(now - hot_ttl)
    bases = _tenant_bases(client)
    pipe = client.pipeline(transaction=False)
    for base in bases:
        pipe.zcount(keys.idle(base), "-inf", cutoff)
    return sum(int(n) for n in pipe.execute()) if bases else 0


def count_expired(
    client: redis.Redis, *, max_age: timedelta, now: datetime, database_url: str | None = None
) -> int:
    """Sessions whose age reached ``max_age``, in Redis and (if given) the PostgreSQL tier."""
    cutoff = now - max_age
    bases = _tenant_bases(client)
    total = 0
    if bases:
        pipe = client.pipeline(transaction=False)
        for base in bases:
            pipe.zcount(keys.created(base), "-inf", keys.micros(cutoff))
        total = sum(int(n) for n in pipe.execute())
    if database_url:
        engine = create_engine(database_url, pool_size=1, max_overflow=0)
        try:
            with translated(), engine.connect() as conn:
                query = (
                    sa.select(sa.func.count())
                    .select_from(schema.sessions)
                    .where(schema.sessions.c.created_at <= cutoff)
                )
                total += int(conn.execute(query).scalar_one())
        finally:
            engine.dispose()
    return total

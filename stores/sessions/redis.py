"""The Redis SessionStore: hot tier in Redis, cold tier in PostgreSQL or in Redis.

Hot reads and saves are one round trip (a hash read, a script). Where both tiers are in
Redis, every tier move is one Lua script. With PostgreSQL, moves are fenced so that no
interleaving of demoters, purgers, readers, writers and deleters, and no crash between two
steps, loses a session, serves a stale one or brings a deleted one back; no correctness rests
on a lock, a TTL or timing:

* Every copy (hot hash, Redis-cold hash, PostgreSQL row) carries the session's incarnation
  ``n`` (random at creation), its version ``v`` and its move generation ``g`` (bumped by every
  promotion and every save over a cold copy). Every conditional step compares all three.
* The row is the durable fence. Demotion copies the hot copy to the row only over an older
  (v, g) of the same n, or over a deleted or expired row of another n, and learns which ids
  it wrote; it evicts only those, and only if the hot copy is still (n, v, g). A crash in
  between leaves a row and an unchanged hot copy: reads take the hot copy, the next sweep
  evicts it.
* Promotion (a read, or a save, of a session found only in PostgreSQL) marks the row hot with
  g + 1 in a transaction holding the row's lock, writes the hot copy with g + 1, then
  commits: the row stays as a backup, so a Redis crash right after loses nothing, and any
  demotion that read the copy before is refused (older g).
* Delete marks the row deleted (creating a marker from the hot copy if there was no row)
  before it touches Redis; a demotion in flight is then refused, and a later one of a new
  incarnation may write over the marker. Only the purge removes rows.
* A promotion reads the row after Redis said it held nothing; in between a session may be
  evicted, deleted or rewritten in place. Each of those replaces the fence token of the
  session's bucket (``lua/lib.lua``); the promotion carries the token it saw and is refused,
  and starts again, if it changed.
* Reads take the Redis copy first; rows count (hot-marked ones as backups) only for ids Redis
  lacked, read after Redis answered. A listing reads the index before the table, so a
  session moving between tiers is seen on one side or the other.

Whenever a session has a hot copy, that copy is the truth.

On a Redis Cluster nothing above changes: every script runs in its tenant's slot. What
spans slots (the registry and the sweeps' hints, a sweep's calls over many tenants) is never
atomic with a script even on one Redis, and on a cluster goes node by node, so that a master
that is down stops only the tenants it serves (``batch.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from stores.common.clock import Clock, utc_now
from stores.common.pagination import Page
from stores.common.validation import parse_id
from stores.driver_errors import TranslatedEdge, redis_translated
from stores.errors import ConflictError, InvalidInputError, NotFoundError, describe
from stores.sessions import clients, codec, keys, query
from stores.sessions.cold_postgres import PostgresColdTier
from stores.sessions.coldtier import ColdTier, RedisColdTier
from stores.sessions.models import PendingMigration, Session, Tier, TierStats
from stores.sessions.redis_base import MAX_ATTEMPTS, RedisCore, text, token
from stores.sessions.redis_hints import TenantHints
from stores.sessions.redis_moves import Moves
from stores.sessions.redis_sweeps import Sweeps
from stores.sessions.shards import Shard
from stores.sessions.store import SessionStore

_NONE = "-"
"""An incarnation no copy has (incarnations are hex, or '' for copies older than them)."""


class RedisSessionStore(SessionStore, TranslatedEdge):
    """A two-tier SessionStore on Redis (see the module docstring for the orderings).

    ``RedisSessionStore(client, cold_tier=PostgresColdTier(engine) | RedisColdTier(ttl=...),
    hot_ttl=, max_age=, clock=, max_bytes=)`` on a redis-py ``Redis`` or ``RedisCluster``,
    or :meth:`from_url`. Single sessions and listings are here; the promotions they set
    off are :class:`Moves`' (``redis_moves.py``), the sweeps :class:`Sweeps`'
    (``redis_sweeps.py``), their registry and hints :class:`TenantHints`'
    (``redis_hints.py``), and what all of them share :class:`RedisCore`'s (``redis_base.py``).
    Every public method runs inside the Redis error policy of ``stores.driver_errors``.
    """

    _driver_errors = redis_translated

    def __init__(
        self,
        client: clients.Client,
        *,
        cold_tier: ColdTier | None = None,
        hot_ttl: timedelta = timedelta(minutes=30),
        max_age: timedelta = timedelta(days=7),
        clock: Clock = utc_now,
        max_bytes: int = codec.DEFAULT_MAX_BYTES,
        tombstone_ttl: timedelta | None = None,
    ) -> None:
        # ``tombstone_ttl`` is accepted for compatibility: deletes are fenced by the
        # PostgreSQL row and the fence token now, and leave no timed tombstone behind.
        del tombstone_ttl
        self._core = RedisCore(client, cold_tier, (hot_ttl, max_age, clock, max_bytes))
        self._hints = TenantHints(self._core)
        self._sweeps = Sweeps(self._core, self._hints)
        self._moves = Moves(self._core)

    @property
    def client(self) -> clients.Client:
        """The redis-py client (``Redis`` or ``RedisCluster``)."""
        return self._core.client

    @property
    def cold_tier(self) -> ColdTier:
        """Where idle sessions go: rows in PostgreSQL, or compressed copies in Redis."""
        return self._core.cold_tier

    @property
    def hot_ttl(self) -> timedelta:
        """How long a session stays hot without activity before the sweep demotes it."""
        return self._core.hot_ttl

    @property
    def max_age(self) -> timedelta:
        """How long after its creation a session is purged from every tier."""
        return self._core.max_age

    @property
    def max_bytes(self) -> int:
        """The largest encoded session a save accepts."""
        return self._core.max_bytes

    @property
    def step_hook(self) -> Callable[[str], None] | None:
        """Called with a step's name between the steps of tier moves (tests pause there)."""
        return self._core.step_hook

    @step_hook.setter
    def step_hook(self, hook: Callable[[str], None] | None) -> None:
        self._core.step_hook = hook

    @property
    def hints_in_scripts(self) -> bool:
        """Whether the sweep scripts keep the sweeps' hints themselves (one Redis; set it
        false to take the cluster's way there: see ``redis_hints.py``)."""
        return self._core.hints_in_scripts

    @hints_in_scripts.setter
    def hints_in_scripts(self, value: bool) -> None:
        self._core.hints_in_scripts = value

    @property
    def fence_refusals(self) -> int:
        """How often a fenced step refused to act on a copy that had changed since it was
        read (a demotion, eviction or promotion that lost a race), since the store opened."""
        return self._core.fence_refusals

    def unmovable_counts(self) -> dict[str, int]:
        """See :meth:`SessionStore.unmovable_counts`."""
        return self._core.unmovable_counts()

    def demote_idle(self, *, limit: int = 1000, shard: Shard | None = None) -> int:
        """See :meth:`Sweeps.demote_idle`."""
        return self._sweeps.demote_idle(limit=limit, shard=shard)

    def purge_expired(self, *, limit: int = 1000, shard: Shard | None = None) -> int:
        """See :meth:`Sweeps.purge_expired`."""
        return self._sweeps.purge_expired(limit=limit, shard=shard)

    def count_idle(self) -> int:
        """See :meth:`SessionStore.count_idle`."""
        return self._sweeps.count_idle()

    def oldest_idle_since(self) -> datetime | None:
        """See :meth:`SessionStore.oldest_idle_since`."""
        return self._sweeps.oldest_idle_since()

    def count_expired(self) -> int:
        """See :meth:`SessionStore.count_expired`."""
        return self._sweeps.count_expired()

    def count_quarantined(self) -> int:
        """See :meth:`SessionStore.count_quarantined`."""
        return self._sweeps.count_quarantined()

    def _mark_pending(self, q: query.Query, migration: PendingMigration) -> int:
        return self._sweeps.mark_pending_migration(q, migration)

    def stats(self) -> TierStats:
        """See :meth:`Sweeps.stats`."""
        return self._sweeps.stats()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        hot_ttl: timedelta = timedelta(minutes=30),
        max_age: timedelta = timedelta(days=7),
        cold_tier: Literal["postgres", "redis"] | None = None,
        database_url: str | None = None,
        clock: Clock = utc_now,
        max_bytes: int = codec.DEFAULT_MAX_BYTES,
        socket_timeout: float = 5.0,
        pool_size: int = 5,
    ) -> RedisSessionStore:
        """A store on the Redis at ``url``, or on the Redis Cluster of a
        ``redis+cluster://host:port[,host:port...]`` URL (see ``clients.py``); the cold tier
        defaults to PostgreSQL when a ``database_url`` is given, else to Redis itself."""
        tier_name = cold_tier or ("postgres" if database_url else "redis")
        if tier_name not in ("postgres", "redis"):
            raise InvalidInputError(
                f"cold_tier must be 'postgres' or 'redis'; got {describe(cold_tier)}",
                field="cold_tier",
            )
        if tier_name == "postgres" and not database_url:
            raise InvalidInputError(
                "the postgres cold tier needs a database_url", field="database_url"
            )
        client = clients.from_url(url, socket_timeout=socket_timeout)
        tier: ColdTier
        if tier_name == "postgres":
            assert database_url is not None
            tier = PostgresColdTier.from_url(database_url, pool_size=pool_size)
        else:
            tier = RedisColdTier(ttl=max_age + timedelta(days=1))
        return cls(
            client,
            cold_tier=tier,
            hot_ttl=hot_ttl,
            max_age=max_age,
            clock=clock,
            max_bytes=max_bytes,
        )

    def save(self, session: Session, *, overwrite: bool = False) -> Session:
        """See :meth:`SessionStore.save`."""
        version, created = codec.store_fields(session)
        now = self._core.clock()
        expected = f"{version}:{keys.micros(created)}" if version else "none"
        call = token()
        for _ in range(MAX_ATTEMPTS):
            if expected == "none":
                stamped = codec.stamp(session, version=1, created_at=now, now=now)
            else:
                v, c = expected.split(":")
                stamped = codec.stamp(
                    session, version=int(v) + 1, created_at=keys.from_micros(int(c)), now=now
                )
            stored, data = codec.encode(stamped, self.max_bytes)
            actual = self._moves.write(stored, data, expected, now, call)
            if actual is None:
                return stored
            same_version = "none" not in (actual, expected) and _version(actual) == version
            if overwrite or same_version:
                # Last write wins, or the caller's created_at was not the stored one.
                expected = actual
                continue
            if actual == "none":
                raise NotFoundError(f"session {stored.id} does not exist")
            current = _version(actual)
            raise ConflictError(
                f"session {stored.id} is at version {current}, not {session.version}",
                current_version=current,
            )
        raise ConflictError(f"session {session.id} kept changing; try again")

    def get(self, tenant_id: UUID | str, session_id: UUID | str) -> Session | None:
        """See :meth:`SessionStore.get`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        base = keys.base(tenant)
        hot = keys.hot(base, sid)
        # The hot path is a plain HGET: cheaper than a script, and just as atomic.
        document = self.client.hget(hot, "d")
        if document is not None:
            return self._core.live(codec.decode(document), self._core.clock())
        return self._moves.read(tenant, sid)

    def delete(self, tenant_id: UUID | str, session_id: UUID | str) -> bool:
        """See :meth:`SessionStore.delete`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        now = self._core.clock()
        base = keys.base(tenant)
        args: list[Any] = [str(sid), keys.micros(now - self.max_age), "", "*", ""]
        existed = False
        if not self.cold_tier.in_redis:
            # The row says "deleted" before Redis is touched: a demotion that read the hot
            # copy can no longer land, and a promotion that read the row is fenced off by
            # the token the script replaces.
            n, document = self.client.hmget(keys.hot(base, sid), ["n", "d"])
            hot = None if document is None else (text(n or b""), text(document).encode())
            self._core.step("delete:read")
            before = self.cold_tier.mark_deleted(tenant, sid, hot)
            self._core.step("delete:marked")
            if hot is None and before is None:
                # Nothing to delete, and no row whose readers need fencing off: a session
                # created since is a later one, and stays.
                return False
            # The incarnations now marked deleted: only a hot copy of one of them goes.
            row_n = before.incarnation if before is not None else _NONE
            args[2:5] = [token(), hot[0] if hot is not None else row_n, row_n]
            existed = (
                before is not None
                and before.state != "deleted"
                and not codec.is_expired(before.created_at, now, self.max_age)
            )
        return self._core.run("delete", tenant, sid, args) == 1 or existed

    def tier_of(self, tenant_id: UUID | str, session_id: UUID | str) -> Tier | None:
        """See :meth:`SessionStore.tier_of`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        base = keys.base(tenant)
        cutoff = keys.micros(self._core.clock() - self.max_age)
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(keys.hot(base, sid), "c")
        pipe.hget(keys.cold(base, sid), "c")
        hot_created, cold_created = pipe.execute()
        if hot_created is not None:
            return Tier.HOT if int(hot_created) > cutoff else None
        if cold_created is not None:
            return Tier.COLD if int(cold_created) > cutoff else None
        # Not in Redis: the row, read after Redis answered, is the session's copy (a row
        # marked hot backs up a hot copy Redis no longer has, or one promoted since).
        row = self.cold_tier.locate(tenant, sid)
        if row is not None and keys.micros(row.created_at) > cutoff:
            return Tier.COLD
        return None

    def get_by_channel(
        self, tenant_id: UUID | str, channel: str, user_channel_id: str
    ) -> Session | None:
        """See :meth:`SessionStore.get_by_channel`."""
        tenant = parse_id(tenant_id, "tenant_id")
        query.check_channel(channel, user_channel_id)
        base = keys.base(tenant)
        index = keys.index(base, keys.channel_suffix(channel, user_channel_id))
        now = self._core.clock()
        cutoff = now - self.max_age
        depth = 4
        while True:
            hot_ids: list[bytes] = self.client.zrevrangebyscore(  # type: ignore[assignment]
                index, "+inf", f"({keys.micros(cutoff)}", start=0, num=depth
            )
            ids = [UUID(text(i)) for i in hot_ids]
            cold_ids = self.cold_tier.newest_ids_by_channel(
                tenant, channel, user_channel_id, cutoff, depth
            )
            found = [
                f.session
                for f in self._core.resolve(tenant, ids + cold_ids, now)
                if f.session.channel == channel and f.session.user_channel_id == user_channel_id
            ]
            if found:
                return max(found, key=lambda s: (s.created_at, str(s.id)))
            if len(hot_ids) < depth and len(cold_ids) < depth:
                return None
            depth *= 8

    def _list(self, q: query.Query) -> Page[Session]:
        items: list[Session] = []
        for found in self._core.scan(q, self._core.clock()):
            items.append(found.session)
            if len(items) > q.limit:
                break
        return codec.page(items, q.limit)

    def close(self) -> None:
        """Close the Redis connections and dispose of the PostgreSQL engine."""
        self.client.close()
        self.cold_tier.close()


def _version(state: str) -> int:
    return int(state.split(":")[0])

"""The Redis SessionStore: hot tier in Redis, cold tier in PostgreSQL or in Redis.

Hot reads and saves are one round trip (a hash read, a script). Tier moves are single Lua
scripts where both tiers are in Redis; with PostgreSQL they are ordered so that a crash
between two steps leaves a readable, correct session:

* demotion copies the session to PostgreSQL, then evicts the hot copy only if its version is
  unchanged (a copy left stale by a race is deleted again by version);
* promotion, and a save of a session found in PostgreSQL, delete the row in a transaction,
  write the hot copy, and only then commit: the row's lock keeps it from changing meanwhile,
  and a failure rolls the row back;
* delete removes the row, then the Redis copies, leaving a tombstone that stops a demotion
  in flight from bringing the session back; if Redis held nothing, a demotion may have
  landed in between, so the row is removed once more.

Whenever a session has a hot copy, that copy is the truth.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import redis as redis_lib
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from stores.common.clock import Clock, utc_now
from stores.common.pagination import Page
from stores.common.validation import parse_id
from stores.errors import ConflictError, InvalidInputError, NotFoundError, describe
from stores.sessions import codec, keys, query
from stores.sessions.coldtier import ColdRow, PostgresColdTier, RedisColdTier
from stores.sessions.models import Session, Tier
from stores.sessions.redis_base import MAX_ATTEMPTS, text
from stores.sessions.redis_sweeps import RedisSweeps
from stores.sessions.scripts import translate, translated
from stores.sessions.store import SessionStore


class RedisSessionStore(RedisSweeps, SessionStore):
    """A two-tier SessionStore on Redis (see the module docstring for the orderings).

    ``RedisSessionStore(client, cold_tier=PostgresColdTier(engine) | RedisColdTier(ttl=...),
    hot_ttl=, max_age=, clock=, max_bytes=, tombstone_ttl=)`` on a redis-py client, or
    :meth:`from_url`.
    """

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
        """A store on the Redis at ``url``; the cold tier defaults to PostgreSQL when a
        ``database_url`` is given, else to Redis itself."""
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
        client = redis_lib.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # A retried call is safe: the scripts recognise a write that already landed.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
            health_check_interval=30,
        )
        tier: PostgresColdTier | RedisColdTier
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
        version, created = _store_fields(session)
        now = self._clock()
        expected = f"{version}:{keys.micros(created)}" if version else "none"
        token = os.urandom(8).hex()
        for _ in range(MAX_ATTEMPTS):
            if expected == "none":
                stamped = codec.stamp(session, version=1, created_at=now, now=now)
            else:
                v, c = expected.split(":")
                stamped = codec.stamp(
                    session, version=int(v) + 1, created_at=keys.from_micros(int(c)), now=now
                )
            stored, data = codec.encode(stamped, self.max_bytes)
            actual = self._write(stored, data, expected, now, token)
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

    def _write(
        self, stored: Session, data: bytes, expected: str, now: datetime, token: str
    ) -> str | None:
        """Run the save script; None if the write landed, else the stored state."""
        args: list[Any] = [
            str(stored.id),
            expected,
            data,
            stored.version,
            keys.micros(stored.created_at),
            keys.micros(now),
            keys.micros(now - self.max_age),
            keys.base(stored.tenant_id),
            keys.index_suffixes(stored),
            "?" if self._pg is not None else "none",
            "h",
            token,
            "",
        ]
        # An update of a hot session skips the tenant registry: it is there already.
        reply = self._run("save", stored.tenant_id, stored.id, args, register=expected == "none")
        for _ in range(MAX_ATTEMPTS):
            if reply[0] == b"ok":
                return None
            if reply[1] != b"?":
                return text(reply[1])
            # In neither Redis tier: look in the table, holding the row's lock so that it
            # cannot change before the script has run and the row is gone.
            assert self._pg is not None
            with self._pg.locked(stored.tenant_id, stored.id) as cold:
                args[9] = _state(cold.row)
                args[12] = reply[2]
                reply = self._run("save", stored.tenant_id, stored.id, args, register=True)
                if reply[0] == b"ok":
                    cold.delete()
                    return None
        raise ConflictError(f"session {stored.id} kept moving between tiers; try again")

    def get(self, tenant_id: UUID | str, session_id: UUID | str) -> Session | None:
        """See :meth:`SessionStore.get`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        base = keys.base(tenant)
        hot = keys.hot(base, sid)
        try:
            # The hot path is a plain HGET: cheaper than a script, and just as atomic.
            document = self.client.hget(hot, "d")
        except redis_lib.RedisError as exc:
            raise translate(exc) from exc
        if document is not None:
            return self._live(codec.decode(document), self._clock())
        missing_at: bytes | None = None
        for _ in range(MAX_ATTEMPTS):
            with translated():
                reply = self._scripts["get"](
                    keys=[hot, keys.cold(base, sid)], args=[base, str(sid)], client=self.client
                )
            now = self._clock()
            if reply[0] == b"h":
                return self._live(codec.decode(reply[1]), now)
            if reply[0] == b"c":
                assert self._rc is not None
                data = self._rc.decompress(reply[1])
                session = self._live(codec.decode(data), now)
                if session is None:
                    return None
                promoted = self._promote(session, data, int(reply[2]), now)
                if promoted[0] == b"moved":
                    continue  # changed or deleted since it was read
                return self._promoted(session, promoted, now)
            if self._pg is None or reply[1] == missing_at:
                # Not in the table either, and nothing moved since it was looked at.
                return None
            with self._pg.locked(tenant, sid) as cold:
                if cold.row is None:
                    missing_at = reply[1]
                    continue
                data = cold.row.data.encode()
                session = self._live(codec.decode(data), now)
                if session is None:
                    return None
                promoted = self._promote(session, data, cold.row.version, now)
                if promoted[0] == b"ok":
                    cold.delete()
                return self._promoted(session, promoted, now)
        return None

    def _promote(self, session: Session, data: bytes, version: int, now: datetime) -> Any:
        """Run the promote script for a cold session that was just read."""
        args = [
            str(session.id),
            data,
            version,
            keys.micros(session.created_at),
            keys.micros(now),
            keys.base(session.tenant_id),
            keys.index_suffixes(session),
            "redis" if self._rc is not None else "postgres",
        ]
        # A Redis cold session's tenant is registered already: it has not left Redis. One
        # from PostgreSQL may come back to a Redis that lost its registry in a restart.
        register = self._pg is not None
        return self._run("promote", session.tenant_id, session.id, args, register=register)

    def _promoted(self, session: Session, reply: Any, now: datetime) -> Session | None:
        """The result of a promotion: the session, or the hot copy that won a race."""
        if reply[0] == b"ok":
            return session
        if reply[0] == b"hot":
            return self._live(codec.decode(reply[1]), now)
        return None  # deleted meanwhile

    def delete(self, tenant_id: UUID | str, session_id: UUID | str) -> bool:
        """See :meth:`SessionStore.delete`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        now = self._clock()
        existed = False
        if self._pg is not None:
            row = self._pg.delete(tenant, sid)
            existed = row is not None and not codec.is_expired(row.created_at, now, self.max_age)
        base = keys.base(tenant)
        args = [str(sid), base, keys.micros(now - self.max_age), self._tombstone_ms]
        if self._run("delete", tenant, sid, args) == 1:
            return True
        if self._pg is not None:
            # Not in Redis: a demotion may have copied and evicted it since the row was
            # deleted. The tombstone now stops any later one, so this second look is final.
            row = self._pg.delete(tenant, sid)
            if row is not None and not codec.is_expired(row.created_at, now, self.max_age):
                existed = True
        return existed

    def tier_of(self, tenant_id: UUID | str, session_id: UUID | str) -> Tier | None:
        """See :meth:`SessionStore.tier_of`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        base = keys.base(tenant)
        cutoff = keys.micros(self._clock() - self.max_age)
        missing_at: bytes | None = None
        for _ in range(MAX_ATTEMPTS):
            with translated():
                pipe = self.client.pipeline(transaction=False)
                pipe.hget(keys.hot(base, sid), "c")
                pipe.hget(keys.cold(base, sid), "c")
                pipe.hget(keys.moves(base), keys.moves_bucket(sid))
                hot_created, cold_created, moved = pipe.execute()
            if hot_created is not None:
                return Tier.HOT if int(hot_created) > cutoff else None
            if cold_created is not None:
                return Tier.COLD if int(cold_created) > cutoff else None
            if self._pg is None or moved == missing_at:
                return None
            row = self._pg.get(tenant, sid)
            if row is not None:
                return Tier.COLD if keys.micros(row.created_at) > cutoff else None
            missing_at = moved  # look again unless nothing moved meanwhile
        return None

    def get_by_channel(
        self, tenant_id: UUID | str, channel: str, user_channel_id: str
    ) -> Session | None:
        """See :meth:`SessionStore.get_by_channel`."""
        tenant = parse_id(tenant_id, "tenant_id")
        query.check_channel(channel, user_channel_id)
        base = keys.base(tenant)
        index = keys.index(base, keys.channel_suffix(channel, user_channel_id))
        now = self._clock()
        cutoff = now - self.max_age
        depth = 4
        while True:
            with translated():
                hot_ids: list[bytes] = self.client.zrevrangebyscore(  # type: ignore[assignment]
                    index, "+inf", f"({keys.micros(cutoff)}", start=0, num=depth
                )
            rows: list[ColdRow] = []
            if self._pg is not None:
                rows = self._pg.newest_by_channel(tenant, channel, user_channel_id, cutoff, depth)
            found = [
                s
                for s in self._resolve(tenant, [UUID(text(i)) for i in hot_ids], rows, now)
                if s.channel == channel and s.user_channel_id == user_channel_id
            ]
            if found:
                return max(found, key=lambda s: (s.created_at, str(s.id)))
            if len(hot_ids) < depth and len(rows) < depth:
                return None
            depth *= 8

    def _list(self, q: query.Query) -> Page[Session]:
        items: list[Session] = []
        for session in self._scan(q, self._clock()):
            items.append(session)
            if len(items) > q.limit:
                break
        return codec.page(items, q.limit)

    def close(self) -> None:
        """Close the Redis connections and dispose of the PostgreSQL engine."""
        self.client.close()
        if self._pg is not None:
            self._pg.close()


def _store_fields(session: Session) -> tuple[int, datetime]:
    """The version and created_at a save starts from, checked before they are used."""
    if not isinstance(session, Session):
        raise InvalidInputError(f"expected a Session; got {describe(session)}", field="session")
    version, created = session.version, session.created_at
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidInputError(
            f"version must be an integer >= 0; got {describe(version)}", field="version"
        )
    if not isinstance(created, datetime) or created.tzinfo is None:
        raise InvalidInputError("created_at must be a timezone-aware datetime", field="created_at")
    return version, created


def _state(row: ColdRow | None) -> str:
    """A row's state as the save script compares it."""
    return "none" if row is None else f"{row.version}:{keys.micros(row.created_at)}"


def _version(state: str) -> int:
    return int(state.split(":")[0])

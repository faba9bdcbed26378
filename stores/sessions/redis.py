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

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from stores.common.clock import Clock, utc_now
from stores.common.pagination import Page
from stores.common.validation import parse_id
from stores.driver_errors import redis_translated
from stores.errors import ConflictError, InvalidInputError, NotFoundError, describe
from stores.sessions import clients, codec, keys, query, scripts
from stores.sessions.cold_postgres import PostgresColdTier
from stores.sessions.coldtier import ColdRow, ColdTier, RedisColdTier
from stores.sessions.models import Session, Tier
from stores.sessions.redis_base import MAX_ATTEMPTS, text, token
from stores.sessions.redis_sweeps import RedisSweeps
from stores.sessions.store import SessionStore

_NONE = "-"
"""An incarnation no copy has (incarnations are hex, or '' for copies older than them)."""


class RedisSessionStore(RedisSweeps, SessionStore):
    """A two-tier SessionStore on Redis (see the module docstring for the orderings).

    ``RedisSessionStore(client, cold_tier=PostgresColdTier(engine) | RedisColdTier(ttl=...),
    hot_ttl=, max_age=, clock=, max_bytes=)`` on a redis-py ``Redis`` or ``RedisCluster``,
    or :meth:`from_url`.
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
        now = self._clock()
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
            actual = self._write(stored, data, expected, now, call)
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
        self, stored: Session, data: bytes, expected: str, now: datetime, call: str
    ) -> str | None:
        """Run the save script; None if the write landed, else the stored state."""
        args = self._save_args(
            stored,
            data,
            expected,
            now,
            now_us=keys.micros(now),
            row="none" if self.cold_tier.in_redis else "?",
            target="h",
            call=call,
            new_incarnation=token(),
        )
        # An update of a hot session skips the registry and the hints: the script says if
        # the session entered the idle set after all (back from the cold tier or the
        # quarantine), and the hints are written then.
        tenant, hint = stored.tenant_id, (keys.micros(now), keys.micros(stored.created_at))
        reply = self._run(
            "save", tenant, stored.id, args.argv(), hint=hint if expected == "none" else None
        )
        if expected != "none" and reply[0] == b"ok" and len(reply) > 1 and reply[1] == 1:
            self._hint(tenant, *hint)
            return None
        for _ in range(MAX_ATTEMPTS):
            if reply[0] == b"ok":
                return None
            if reply[1] != b"?":
                return text(reply[1])
            if reply[2] == b"":
                # The bucket has no fence token: none was ever needed, or Redis lost it.
                # One is made only where a session is or is being created, so that saves
                # of sessions that do not exist write nothing.
                if expected != "none" and self.cold_tier.locate(tenant, stored.id) is None:
                    return "none"
                args = replace(args, row="?", fence_token="", fresh_fence=token())
                reply = self._run("save", tenant, stored.id, args.argv(), hint=hint)
                continue
            # In neither Redis tier: take the row (a save over it is a promotion), then
            # write the hot copy unless the fence token changed since Redis was asked.
            with self.cold_tier.claim(stored.tenant_id, stored.id, now - self.max_age) as cold:
                self._step("save:claimed")
                args = replace(args, row=_state(cold.row), fence_token=reply[2])
                reply = self._run("save", tenant, stored.id, args.argv(), hint=hint)
                if reply[0] == b"ok":
                    cold.keep()
                elif reply[1] == b"?":
                    self._refused()
        raise ConflictError(f"session {stored.id} kept moving between tiers; try again")

    def get(self, tenant_id: UUID | str, session_id: UUID | str) -> Session | None:
        """See :meth:`SessionStore.get`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        base = keys.base(tenant)
        hot = keys.hot(base, sid)
        with redis_translated():
            # The hot path is a plain HGET: cheaper than a script, and just as atomic.
            document = self.client.hget(hot, "d")
        if document is not None:
            return self._live(codec.decode(document), self._clock())
        fresh = ""  # no fence token is made for a session that does not exist
        for _ in range(MAX_ATTEMPTS):
            with redis_translated():
                reply = scripts.run(
                    self.client,
                    self._scripts["get"],
                    keys.session_keys(base, sid),
                    [str(sid), fresh],
                )
            now = self._clock()
            if reply[0] == b"h":
                return self._live(codec.decode(reply[1]), now)
            if reply[0] == b"c":
                data = self.cold_tier.unpack(reply[1])
                session = self._live(codec.decode(data), now)
                if session is None:
                    return None
                self._step("promote:read")
                promoted = self._promote(
                    session, data, text(reply[3]), int(reply[4]), now, text(reply[2])
                )
                if promoted[0] == b"moved":
                    self._refused()
                    continue  # changed or deleted since it was read
                return self._promoted(session, promoted, now)
            if self.cold_tier.in_redis:
                return None
            if reply[1] == b"":
                # The bucket has no fence token (none was needed yet, or Redis lost it): make
                # one, and read again, only if there is a row to promote.
                row = self.cold_tier.locate(tenant, sid)
                if row is None or codec.is_expired(row.created_at, now, self.max_age):
                    return None
                fresh = token()
                continue
            with self.cold_tier.claim(tenant, sid, now - self.max_age) as cold:
                if cold.row is None:
                    return None  # no row, deleted, or expired
                self._step("promote:claimed")
                data = cold.row.data.encode()
                session = codec.decode(data)
                promoted = self._promote(
                    session, data, cold.row.incarnation, cold.row.generation, now, reply[1]
                )
                if promoted[0] == b"ok":
                    cold.keep()
                    self._step("promote:written")
                elif promoted[0] == b"moved":
                    self._refused()
                    continue
                return self._promoted(session, promoted, now)
        raise ConflictError(f"session {sid} kept moving between tiers; try again")

    def _promote(
        self,
        session: Session,
        data: bytes,
        incarnation: str,
        generation: int,
        now: datetime,
        check: bytes | str,
    ) -> Any:
        """Run the promote script for a cold session that was just read; ``check`` is the
        version read from the Redis cold hash, or the fence token get.lua gave."""
        args: list[Any] = [
            str(session.id),
            data,
            session.version,
            keys.micros(session.created_at),
            keys.micros(now),
            keys.index_suffixes(session),
            incarnation,
            self.cold_tier.name,
            generation,
        ]
        if self.cold_tier.in_redis:
            # The cold hash's version is compared as stored: it is the document's own.
            args[2] = check
        else:
            args.append(check)
        # The session enters the idle set: the demotion sweep's hint must know (and one from
        # PostgreSQL may come back to a Redis that lost its registry in a restart).
        hint = (keys.micros(now), keys.micros(session.created_at))
        return self._run("promote", session.tenant_id, session.id, args, hint=hint)

    def _promoted(self, session: Session, reply: Any, now: datetime) -> Session | None:
        """The result of a promotion: the session, or the hot copy that won a race."""
        if reply[0] == b"ok":
            return self._live(session, now)
        return self._live(codec.decode(reply[1]), now)

    def delete(self, tenant_id: UUID | str, session_id: UUID | str) -> bool:
        """See :meth:`SessionStore.delete`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        now = self._clock()
        base = keys.base(tenant)
        args: list[Any] = [str(sid), keys.micros(now - self.max_age), "", "*", ""]
        existed = False
        if not self.cold_tier.in_redis:
            # The row says "deleted" before Redis is touched: a demotion that read the hot
            # copy can no longer land, and a promotion that read the row is fenced off by
            # the token the script replaces.
            with redis_translated():
                n, document = self.client.hmget(keys.hot(base, sid), ["n", "d"])
            hot = None if document is None else (text(n or b""), text(document).encode())
            self._step("delete:read")
            before = self.cold_tier.mark_deleted(tenant, sid, hot)
            self._step("delete:marked")
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
        return self._run("delete", tenant, sid, args) == 1 or existed

    def tier_of(self, tenant_id: UUID | str, session_id: UUID | str) -> Tier | None:
        """See :meth:`SessionStore.tier_of`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        base = keys.base(tenant)
        cutoff = keys.micros(self._clock() - self.max_age)
        with redis_translated():
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
        now = self._clock()
        cutoff = now - self.max_age
        depth = 4
        while True:
            with redis_translated():
                hot_ids: list[bytes] = self.client.zrevrangebyscore(  # type: ignore[assignment]
                    index, "+inf", f"({keys.micros(cutoff)}", start=0, num=depth
                )
            ids = [UUID(text(i)) for i in hot_ids]
            cold_ids = self.cold_tier.newest_ids_by_channel(
                tenant, channel, user_channel_id, cutoff, depth
            )
            found = [
                f.session
                for f in self._resolve(tenant, ids + cold_ids, now)
                if f.session.channel == channel and f.session.user_channel_id == user_channel_id
            ]
            if found:
                return max(found, key=lambda s: (s.created_at, str(s.id)))
            if len(hot_ids) < depth and len(cold_ids) < depth:
                return None
            depth *= 8

    def _list(self, q: query.Query) -> Page[Session]:
        items: list[Session] = []
        for found in self._scan(q, self._clock()):
            items.append(found.session)
            if len(items) > q.limit:
                break
        return codec.page(items, q.limit)

    def close(self) -> None:
        """Close the Redis connections and dispose of the PostgreSQL engine."""
        self.client.close()
        self.cold_tier.close()


def _state(row: ColdRow | None) -> str:
    """A claimed row as the save script takes it."""
    if row is None:
        return "none"
    return f"{row.version}:{keys.micros(row.created_at)}:{row.incarnation}:{row.generation}"


def _version(state: str) -> int:
    return int(state.split(":")[0])

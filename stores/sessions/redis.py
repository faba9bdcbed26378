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
  in flight from bringing the session back.

Whenever a session has a hot copy, that copy is the truth.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import redis as redis_lib
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from stores.common.clock import Clock, utc_now
from stores.common.pagination import Page
from stores.common.validation import check_limit, parse_id
from stores.errors import ConflictError, InvalidInputError, NotFoundError, describe
from stores.sessions import codec, keys, query
from stores.sessions.coldtier import ColdRow, PostgresColdTier, RedisColdTier
from stores.sessions.models import PendingMigration, Session, Tier, TierStats
from stores.sessions.scripts import register, translate, translated
from stores.sessions.store import SessionStore

_BATCH = 250
"""Sessions per script call in sweeps and listings: keeps each script short."""

_MAX_ATTEMPTS = 20
"""How often an operation starts again when a session moved or changed under it."""

_STATS_SAMPLE = 8
"""Keys per tenant and tier whose ``MEMORY USAGE`` is sampled by ``stats``."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisSessionStore(SessionStore):
    """A two-tier SessionStore on Redis (see the module docstring for the orderings)."""

    def __init__(
        self,
        client: redis_lib.Redis,
        *,
        cold_tier: PostgresColdTier | RedisColdTier | None = None,
        hot_ttl: timedelta = timedelta(minutes=30),
        max_age: timedelta = timedelta(days=7),
        clock: Clock = utc_now,
        max_bytes: int = codec.DEFAULT_MAX_BYTES,
        tombstone_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        codec.check_durations(hot_ttl, max_age)
        self.hot_ttl = hot_ttl
        self.max_age = max_age
        self.max_bytes = codec.check_max_bytes(max_bytes)
        self.client = client
        self._clock = clock
        self._tombstone_ms = int(tombstone_ttl / timedelta(milliseconds=1))
        if cold_tier is None:
            cold_tier = RedisColdTier(ttl=max_age + timedelta(days=1))
        self.cold_tier = cold_tier
        self._pg = cold_tier if isinstance(cold_tier, PostgresColdTier) else None
        self._rc = cold_tier if isinstance(cold_tier, RedisColdTier) else None
        self._scripts = register(client)

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
        for _ in range(_MAX_ATTEMPTS):
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
        for _ in range(_MAX_ATTEMPTS):
            if reply[0] == b"ok":
                return None
            if reply[1] != b"?":
                return _text(reply[1])
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
        for _ in range(_MAX_ATTEMPTS):
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
        return self._run("delete", tenant, sid, args) == 1 or existed

    def tier_of(self, tenant_id: UUID | str, session_id: UUID | str) -> Tier | None:
        """See :meth:`SessionStore.tier_of`."""
        tenant, sid = codec.parse_ids(tenant_id, session_id)
        base = keys.base(tenant)
        cutoff = keys.micros(self._clock() - self.max_age)
        missing_at: bytes | None = None
        for _ in range(_MAX_ATTEMPTS):
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
                for s in self._resolve(tenant, [UUID(_text(i)) for i in hot_ids], rows, now)
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

    def _scan(self, q: query.Query, now: datetime) -> Iterator[Session]:
        """Sessions matching ``q`` in id order, merging the Redis index with the cold table.

        Each round reads a batch from each source; only ids up to the smallest last id of a
        full batch are certain to be complete, so the next round starts there. With the
        PostgreSQL tier the index is read before and after the table: a session promoted
        or demoted meanwhile is then seen on one side or the other.
        """
        index = keys.index(keys.base(q.tenant_id), keys.query_suffix(q))
        cutoff = now - self.max_age
        after = q.after
        batch = min(q.limit + 1, _BATCH)
        while True:
            sources = [self._index_ids(index, after, batch)]
            rows: list[ColdRow] = []
            if self._pg is not None:
                rows = self._pg.find(q, after, batch, cutoff)
                sources += [[str(r.id) for r in rows], self._index_ids(index, after, batch)]
            bounds = [ids[-1] for ids in sources if len(ids) == batch]
            bound = min(bounds) if bounds else None
            candidates = sorted({i for ids in sources for i in ids if bound is None or i <= bound})
            known = [r for r in rows if bound is None or str(r.id) <= bound]
            resolved = self._resolve(q.tenant_id, [UUID(i) for i in candidates], known, now)
            yield from sorted((s for s in resolved if q.matches(s)), key=lambda s: str(s.id))
            if bound is None:
                return
            after = bound

    def _index_ids(self, index: str, after: str | None, batch: int) -> list[str]:
        with translated():
            found = self.client.zrangebylex(
                index, f"({after}" if after else "-", "+", start=0, num=batch
            )
        return [_text(i) for i in found]

    def _resolve(
        self, tenant: UUID, ids: list[UUID], rows: list[ColdRow], now: datetime
    ) -> list[Session]:
        """The current, unexpired version of each session: hot copy first, then cold."""
        cold_rows = {r.id: r for r in rows}
        wanted = list(dict.fromkeys([*ids, *cold_rows]))
        base = keys.base(tenant)
        out: list[Session] = []
        missing: list[UUID] = []
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            with translated():
                reply = self._scripts["fetch"](
                    keys=[keys.idle(base)], args=[base, *map(str, chunk)], client=self.client
                )
            for sid, (tier, payload) in zip(
                chunk, zip(reply[::2], reply[1::2], strict=True), strict=True
            ):
                data: bytes | str | None = None
                if tier == b"h":
                    data = payload
                elif tier == b"c":
                    assert self._rc is not None
                    data = self._rc.decompress(payload)
                elif sid in cold_rows:
                    data = cold_rows[sid].data
                else:
                    missing.append(sid)
                if data is not None:
                    session = self._live(codec.decode(data), now)
                    if session is not None:
                        out.append(session)
        if missing and self._pg is not None:
            # Demoted between the index read and the fetch.
            for row in self._pg.get_many(tenant, missing).values():
                session = self._live(codec.decode(row.data), now)
                if session is not None:
                    out.append(session)
        return out

    def demote_idle(self, *, limit: int = 1000) -> int:
        """See :meth:`SessionStore.demote_idle`."""
        check_limit(limit)
        cutoff = keys.micros(self._clock() - self.hot_ttl)
        moved = 0
        for tenant in self._tenants():
            base = keys.base(tenant)
            while moved < limit:
                with translated():
                    flat = self._scripts["idle"](
                        keys=[keys.idle(base)],
                        args=[cutoff, min(_BATCH, limit - moved), base],
                        client=self.client,
                    )
                if not flat:
                    break
                batch = [flat[i : i + 5] for i in range(0, len(flat), 5)]
                moved += self._demote_batch(tenant, base, batch)
                if len(batch) < _BATCH:
                    break
            if moved >= limit:
                break
        return moved

    def _demote_batch(self, tenant: UUID, base: str, batch: list[list[bytes]]) -> int:
        if self._rc is not None:
            args: list[Any] = [base, self._rc.ttl_ms]
            for sid, data, version, _, _ in batch:
                args += [sid, version, self._rc.compress(data)]
            with translated():
                return int(
                    self._scripts["demote"](keys=[keys.idle(base)], args=args, client=self.client)
                )
        assert self._pg is not None
        self._pg.put([row[1] for row in batch])
        pairs: list[Any] = [base]
        for row in batch:
            pairs += [row[0], row[2]]
        with translated():
            codes = self._scripts["evict"](
                keys=[keys.idle(base), keys.created(base)], args=pairs, client=self.client
            )
        # A copy whose hot session changed or was deleted meanwhile is stale: drop it again.
        stale = [
            (UUID(_text(row[0])), int(row[2]))
            for row, code in zip(batch, codes, strict=True)
            if code in (b"c", b"d")
        ]
        self._pg.delete_versions(tenant, stale)
        return sum(1 for code in codes if code == b"e")

    def purge_expired(self, *, limit: int = 1000) -> int:
        """See :meth:`SessionStore.purge_expired`."""
        check_limit(limit)
        cutoff = self._clock() - self.max_age
        removed = 0
        for tenant in self._tenants():
            if removed >= limit:
                break
            base = keys.base(tenant)
            with translated():
                removed += int(
                    self._scripts["purge"](
                        keys=[keys.created(base)],
                        args=[base, keys.micros(cutoff), limit - removed],
                        client=self.client,
                    )
                )
        if self._pg is not None and removed < limit:
            removed += self._pg.purge(cutoff, limit - removed)
        return removed

    def mark_pending_migration(
        self,
        tenant_id: UUID | str,
        scenario_id: UUID | str,
        from_version: int,
        migration: PendingMigration,
        *,
        limit: int = 1000,
    ) -> int:
        """See :meth:`SessionStore.mark_pending_migration`."""
        q = query.unmarked(tenant_id, scenario_id, from_version, limit)
        now = self._clock()
        mark = query.checked_migration(migration, q, now)
        marked = 0
        for session in self._scan(q, now):
            if marked >= q.limit:
                break
            marked += self._mark(session, mark)
        return marked

    def _mark(self, session: Session, mark: PendingMigration) -> int:
        """Set the mark on one session in the tier it is in; 1 if it landed."""
        update = {"pending_migration": mark, "version": session.version + 1}
        stored, data = codec.encode(session.model_copy(update=update), self.max_bytes)
        base = keys.base(stored.tenant_id)
        expected = f"{session.version}:{keys.micros(session.created_at)}"
        with translated():
            in_hot = self.client.exists(keys.hot(base, stored.id)) == 1
        if not in_hot and self._pg is not None:
            return int(self._pg.rewrite(stored, data, session.version))
        target = "H" if in_hot else "C"
        if target == "C":
            assert self._rc is not None
            data = self._rc.compress(data)
        args = [
            str(stored.id),
            expected,
            data,
            stored.version,
            keys.micros(stored.created_at),
            "",
            keys.micros(self._clock() - self.max_age),
            base,
            keys.index_suffixes(stored),
            "none",
            target,
            os.urandom(8).hex(),
            "",
        ]
        return int(self._run("save", stored.tenant_id, stored.id, args)[0] == b"ok")

    def stats(self) -> TierStats:
        """See :meth:`SessionStore.stats`: Redis bytes are sampled with ``MEMORY USAGE``."""
        stats = TierStats()
        for tenant in self._tenants():
            base = keys.base(tenant)
            with translated():
                pipe = self.client.pipeline(transaction=False)
                pipe.zcard(keys.idle(base))
                pipe.zcard(keys.created(base))
                pipe.zrandmember(keys.idle(base), _STATS_SAMPLE)
                pipe.zrandmember(keys.created(base), _STATS_SAMPLE)
                hot_count, held, hot_sample, held_sample = pipe.execute()
                hot_bytes = self._sample(base, keys.hot, hot_sample or [])
                stats.hot_sessions += hot_count
                stats.hot_bytes += int(hot_bytes * hot_count)
                if self._rc is not None:
                    cold_count = max(held - hot_count, 0)
                    cold_bytes = self._sample(base, keys.cold, held_sample or [])
                    stats.cold_sessions += cold_count
                    stats.cold_bytes += int(cold_bytes * cold_count)
        if self._pg is not None:
            stats.cold_sessions, stats.cold_bytes = self._pg.stats()
        return stats

    def _sample(self, base: str, key: Callable[[str, str], str], ids: list[bytes]) -> float:
        """The mean ``MEMORY USAGE`` of the sampled sessions present in that tier."""
        pipe = self.client.pipeline(transaction=False)
        for sid in ids:
            pipe.memory_usage(key(base, _text(sid)))
        sizes = [size for size in pipe.execute() if size is not None]
        return sum(sizes) / len(sizes) if sizes else 0.0

    def close(self) -> None:
        """Close the Redis connections and dispose of the PostgreSQL engine."""
        self.client.close()
        if self._pg is not None:
            self._pg.close()

    def _run(
        self, name: str, tenant: UUID, sid: UUID, args: list[Any], *, register: bool = False
    ) -> Any:
        """Run a per-session script; ``register`` also records the tenant for the sweeps."""
        script_keys = keys.session_keys(keys.base(tenant), sid)
        script = self._scripts[name]
        with translated():
            if not register:
                try:
                    return self.client.evalsha(script.sha, len(script_keys), *script_keys, *args)
                except NoScriptError:
                    return script(keys=script_keys, args=args, client=self.client)
            # One round trip: the registry has its own slot, so it cannot be in the script.
            # EVALSHA is queued by hand: a Script object in a pipeline costs an extra
            # SCRIPT EXISTS round trip on every execute.
            pipe = self.client.pipeline(transaction=False)
            pipe.sadd(keys.TENANTS, str(tenant))
            pipe.evalsha(script.sha, len(script_keys), *script_keys, *args)
            added, reply = pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError):
                return script(keys=script_keys, args=args, client=self.client)
            for result in (added, reply):
                if isinstance(result, Exception):
                    raise result
            return reply

    def _tenants(self) -> Iterator[UUID]:
        with translated():
            members = list(self.client.sscan_iter(keys.TENANTS, count=1000))
        for member in members:
            yield UUID(_text(member))

    def _live(self, session: Session, now: datetime) -> Session | None:
        return None if codec.is_expired(session.created_at, now, self.max_age) else session


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

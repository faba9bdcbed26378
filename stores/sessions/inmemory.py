"""The in-memory SessionStore: the reference behaviour every other backend must match."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from stores.common.clock import Clock, utc_now
from stores.common.pagination import Page
from stores.common.validation import check_limit, parse_id
from stores.errors import ConflictError, NotFoundError
from stores.sessions import codec, query
from stores.sessions.models import PendingMigration, Session, Tier, TierStats
from stores.sessions.shards import ALL, Shard, check_shard
from stores.sessions.store import SessionStore

_Key = tuple[UUID, UUID]


@dataclass
class _Entry:
    """A stored session: its JSON document, a private parsed copy, its tier and idle clock."""

    data: bytes
    session: Session
    tier: Tier
    idle_since: datetime


class InMemorySessionStore(SessionStore):
    """A thread-safe SessionStore in process memory, with both tiers simulated.

    Sessions are kept as the same JSON documents the other backends store, so the size limit
    and validation behave alike and every read returns an independent copy.
    """

    def __init__(
        self,
        *,
        hot_ttl: timedelta = timedelta(minutes=30),
        max_age: timedelta = timedelta(days=7),
        clock: Clock = utc_now,
        max_bytes: int = codec.DEFAULT_MAX_BYTES,
    ) -> None:
        codec.check_durations(hot_ttl, max_age)
        self.hot_ttl = hot_ttl
        self.max_age = max_age
        self.max_bytes = codec.check_max_bytes(max_bytes)
        self._clock = clock
        self._lock = threading.RLock()
        self._entries: dict[_Key, _Entry] = {}

    def save(self, session: Session, *, overwrite: bool = False) -> Session:
        """See :meth:`SessionStore.save`."""
        codec.store_fields(session)
        clean, _ = codec.encode(session, self.max_bytes)
        key = (clean.tenant_id, clean.id)
        with self._lock:
            now = self._clock()
            current = self._live(key, now)
            if overwrite:
                version = current.session.version + 1 if current else 1
            elif clean.version == 0:
                if current is not None:
                    raise ConflictError(
                        f"session {clean.id} already exists",
                        current_version=current.session.version,
                    )
                version = 1
            elif current is None:
                raise NotFoundError(f"session {clean.id} does not exist")
            elif current.session.version != clean.version:
                raise ConflictError(
                    f"session {clean.id} is at version {current.session.version}, "
                    f"not {clean.version}",
                    current_version=current.session.version,
                )
            else:
                version = clean.version + 1
            created = current.session.created_at if current else now
            stored = codec.stamp(clean, version=version, created_at=created, now=now)
            stored, data = codec.encode(stored, self.max_bytes)
            self._entries[key] = _Entry(data, stored, Tier.HOT, now)
            return codec.decode(data)

    def get(self, tenant_id: UUID | str, session_id: UUID | str) -> Session | None:
        """See :meth:`SessionStore.get`."""
        key = codec.parse_ids(tenant_id, session_id)
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            if entry is None:
                return None
            if entry.tier is Tier.COLD:
                entry.tier = Tier.HOT
                entry.idle_since = now
            return codec.decode(entry.data)

    def delete(self, tenant_id: UUID | str, session_id: UUID | str) -> bool:
        """See :meth:`SessionStore.delete`."""
        key = codec.parse_ids(tenant_id, session_id)
        with self._lock:
            existed = self._live(key, self._clock()) is not None
            self._entries.pop(key, None)
            return existed

    def get_by_channel(
        self, tenant_id: UUID | str, channel: str, user_channel_id: str
    ) -> Session | None:
        """See :meth:`SessionStore.get_by_channel`."""
        tenant = parse_id(tenant_id, "tenant_id")
        query.check_channel(channel, user_channel_id)
        with self._lock:
            now = self._clock()
            found = [
                e.session
                for (t, _), e in self._entries.items()
                if t == tenant
                and e.session.channel == channel
                and e.session.user_channel_id == user_channel_id
                and not self._expired(e, now)
            ]
            if not found:
                return None
            newest = max(found, key=lambda s: (s.created_at, str(s.id)))
            return codec.decode(self._entries[(tenant, newest.id)].data)

    def tier_of(self, tenant_id: UUID | str, session_id: UUID | str) -> Tier | None:
        """See :meth:`SessionStore.tier_of`."""
        key = codec.parse_ids(tenant_id, session_id)
        with self._lock:
            entry = self._live(key, self._clock())
            return entry.tier if entry else None

    def demote_idle(self, *, limit: int = 1000, shard: Shard | None = None) -> int:
        """See :meth:`SessionStore.demote_idle`."""
        check_limit(limit)
        owner = check_shard(shard) or ALL
        with self._lock:
            cutoff = self._clock() - self.hot_ttl
            idle = sorted(
                (
                    e
                    for (tenant, _), e in self._entries.items()
                    if e.tier is Tier.HOT and e.idle_since <= cutoff and owner.owns(tenant)
                ),
                key=lambda e: e.idle_since,
            )[:limit]
            for entry in idle:
                entry.tier = Tier.COLD
            return len(idle)

    def purge_expired(self, *, limit: int = 1000, shard: Shard | None = None) -> int:
        """See :meth:`SessionStore.purge_expired`."""
        check_limit(limit)
        owner = check_shard(shard) or ALL
        with self._lock:
            now = self._clock()
            expired = sorted(
                (k for k, e in self._entries.items() if self._expired(e, now) and owner.owns(k[0])),
                key=lambda k: self._entries[k].session.created_at,
            )[:limit]
            for key in expired:
                del self._entries[key]
            return len(expired)

    def count_idle(self) -> int:
        """See :meth:`SessionStore.count_idle`."""
        with self._lock:
            cutoff = self._clock() - self.hot_ttl
            return sum(
                1 for e in self._entries.values() if e.tier is Tier.HOT and e.idle_since <= cutoff
            )

    def oldest_idle_since(self) -> datetime | None:
        """See :meth:`SessionStore.oldest_idle_since`."""
        with self._lock:
            hot = [e.idle_since for e in self._entries.values() if e.tier is Tier.HOT]
            return min(hot, default=None)

    def count_expired(self) -> int:
        """See :meth:`SessionStore.count_expired`."""
        with self._lock:
            now = self._clock()
            return sum(1 for e in self._entries.values() if self._expired(e, now))

    def _mark_pending(self, q: query.Query, migration: PendingMigration) -> int:
        with self._lock:
            now = self._clock()
            mark = query.checked_migration(migration, q, now)
            keys = sorted(
                (
                    k
                    for k, e in self._entries.items()
                    if q.matches(e.session) and not self._expired(e, now)
                ),
                key=lambda k: str(k[1]),
            )[: q.limit]
            for key in keys:
                entry = self._entries[key]
                marked = entry.session.model_copy(
                    update={"pending_migration": mark, "version": entry.session.version + 1}
                )
                marked, entry.data = codec.encode(marked, self.max_bytes)
                entry.session = marked
            return len(keys)

    def stats(self) -> TierStats:
        """See :meth:`SessionStore.stats`; bytes are the sizes of the JSON documents."""
        with self._lock:
            stats = TierStats()
            for entry in self._entries.values():
                if entry.tier is Tier.HOT:
                    stats.hot_sessions += 1
                    stats.hot_bytes += len(entry.data)
                else:
                    stats.cold_sessions += 1
                    stats.cold_bytes += len(entry.data)
            return stats

    def _list(self, q: query.Query) -> Page[Session]:
        with self._lock:
            now = self._clock()
            found = sorted(
                (
                    e
                    for e in self._entries.values()
                    if q.matches(e.session) and not self._expired(e, now)
                ),
                key=lambda e: codec.listing_key(e.session),
            )
            if q.after is not None:
                found = [e for e in found if codec.listing_key(e.session)[0] > q.after]
            return codec.page([codec.decode(e.data) for e in found[: q.limit + 1]], q.limit)

    def _live(self, key: _Key, now: datetime) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, now):
            return None
        return entry

    def _expired(self, entry: _Entry, now: datetime) -> bool:
        return codec.is_expired(entry.session.created_at, now, self.max_age)

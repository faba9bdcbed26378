"""The sweeps of the Redis session store: demotion, max-age purge, scenario migration marks,
and the tier statistics.

A sweep costs what it moves, not what the registry holds: for each registry bucket, a hint
sorted set scores every tenant no later than its oldest idle time (demotion) and its oldest
created_at (purge), so one round trip finds the tenants that may have work due. The hints
live in other slots than the tenants' keys, so scripts cannot update them: writers lower
them (``ZADD LT``) before and after a script that adds a session to a tenant's sets, and a
sweep that visited a tenant sets its hint to what is left, then looks again. A hint may be
early (a wasted visit) but is never late, except after a client died between its script
and its hint, which a full pass every :data:`RECONCILE_EVERY` repairs.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from redis.exceptions import NoScriptError

from stores.common.validation import check_limit
from stores.sessions import codec, keys, query
from stores.sessions.models import PendingMigration, TierStats
from stores.sessions.redis_base import BATCH, Found, RedisTiers, text, token
from stores.sessions.scripts import translated

_log = logging.getLogger(__name__)

GROUP = 100
"""Tenants a demotion pass handles at once, each step in one round trip for all of them."""

RECONCILE_EVERY = timedelta(minutes=10)
"""How often, at most, a store's demotion sweep walks every tenant to repair late hints."""

_STATS_SAMPLE = 8
"""Keys per tenant and tier whose ``MEMORY USAGE`` is sampled by ``stats``."""


class RedisSweeps(RedisTiers):
    """The periodic work of a RedisSessionStore (see :class:`SessionStore` for semantics)."""

    def demote_idle(self, *, limit: int = 1000) -> int:
        """See :meth:`SessionStore.demote_idle`: visits only the tenants the hints say may
        have an idle session, :data:`GROUP` tenants at a time, each step of a group in one
        round trip (see the module docstring)."""
        check_limit(limit)
        self._reconcile_if_due()
        cutoff = keys.micros(self._clock() - self.hot_ttl)
        moved = 0
        while moved < limit:
            due, more = self._due(keys.due_idle, cutoff, limit)
            got = self._demote_tenants(deque(due), cutoff, limit - moved)
            moved += got
            # A pass that moved nothing stops even if more tenants look due: their hints
            # were early, and the next pass reads the rest.
            if not more or got == 0:
                break
        return moved

    def _demote_tenants(self, queue: deque[UUID], cutoff: int, limit: int) -> int:
        """Demote up to ``limit`` idle sessions of the tenants in ``queue``."""
        moved = 0
        while queue and moved < limit:
            group = [queue.popleft() for _ in range(min(GROUP, len(queue)))]
            # An equal share each, so that a group never reads much more than it can move;
            # a tenant that filled its share comes round again.
            wanted = min(BATCH, max(1, (limit - moved) // len(group)))
            calls = [([keys.idle(keys.base(t))], [cutoff, wanted, keys.base(t)]) for t in group]
            taken: list[tuple[UUID, list[list[bytes]]]] = []
            exhausted: list[UUID] = []
            budget = limit - moved
            for tenant, flat in zip(group, self._eval_many("idle", calls), strict=True):
                batch = [flat[i : i + 7] for i in range(0, len(flat), 7)][:budget]
                budget -= len(batch)
                if batch:
                    taken.append((tenant, batch))
                if len(flat) // 7 < wanted:
                    # Nothing more is due here: the hint moves on to what is left.
                    exhausted.append(tenant)
                elif budget > 0:
                    queue.append(tenant)  # a full batch: read it again
                # A tenant cut short by the limit keeps its hint as it is, due at once.
            moved += self._demote_group(taken)
            self._refresh(exhausted, keys.due_idle, keys.idle)
        return moved

    def _eval_many(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run script ``name`` once per (keys, args) in one pipeline; the replies in order."""
        if not calls:
            return []
        script = self._scripts[name]
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for script_keys, args in calls:
                pipe.evalsha(script.sha, len(script_keys), *script_keys, *args)
            replies = pipe.execute(raise_on_error=False)
            if any(isinstance(r, NoScriptError) for r in replies):
                # The server lost its scripts (a restart): the failed calls ran nothing.
                self.client.script_load(script.script)
                again = [
                    c for c, r in zip(calls, replies, strict=True) if isinstance(r, NoScriptError)
                ]
                redone = iter(self._eval_many(name, again))
                replies = [next(redone) if isinstance(r, NoScriptError) else r for r in replies]
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies

    def _due(self, hint: Callable[[int], str], cutoff: int, limit: int) -> tuple[list[UUID], bool]:
        """Tenants whose hint is at or before ``cutoff``, a page per bucket in one round trip
        whatever the number of tenants; and whether some bucket had more than a page."""
        page = max(8, 2 * -(-limit // keys.REGISTRY_BUCKETS))
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for bucket in range(keys.REGISTRY_BUCKETS):
                pipe.zrangebyscore(hint(bucket), "-inf", cutoff, start=0, num=page)
            pages = pipe.execute()
        due = [UUID(text(m)) for members in pages for m in members]
        return due, any(len(members) == page for members in pages)

    def _refresh(
        self, tenants: list[UUID], hint: Callable[[int], str], zset: Callable[[str], str]
    ) -> None:
        """Set each tenant's hint to the oldest score of its ``zset`` after a sweep visited
        it (or drop it if the set is empty), then look again: a session that entered the set
        meanwhile lowers it back (its writer also does, after its script; the hint may end
        early, which costs a visit, never late, which would skip work). Each step is one
        round trip for all the tenants."""
        if not tenants:
            return
        sets = [zset(keys.base(t)) for t in tenants]
        places = [(hint(keys.bucket_of(t)), str(t)) for t in tenants]
        with translated():
            first = self._oldest_many(sets)
            self._step("refresh:read")
            pipe = self.client.pipeline(transaction=False)
            for (key, member), score in zip(places, first, strict=True):
                if score is None:
                    pipe.zrem(key, member)
                else:
                    pipe.zadd(key, {member: score})
            pipe.execute()
            again = self._oldest_many(sets)
            pipe = self.client.pipeline(transaction=False)
            for (key, member), before, now in zip(places, first, again, strict=True):
                if now is not None and (before is None or now < before):
                    pipe.zadd(key, {member: now}, lt=True)
            pipe.execute()

    def _oldest_many(self, zsets: list[str]) -> list[int | None]:
        pipe = self.client.pipeline(transaction=False)
        for zset in zsets:
            pipe.zrange(zset, 0, 0, withscores=True)
        return [int(r[0][1]) if r else None for r in pipe.execute()]

    def _reconcile_if_due(self) -> None:
        """Now and then, lower every registered tenant's hints to its oldest scores: hints
        are written beside the scripts, so a client dying between the two can leave one
        late; this repairs it (a late hint delays work by at most RECONCILE_EVERY)."""
        now = self._clock()
        if self._reconciled_at is not None and now - self._reconciled_at < RECONCILE_EVERY:
            return
        self._reconciled_at = now
        tenants = list(self._tenants())
        for start in range(0, len(tenants), 500):
            chunk = tenants[start : start + 500]
            with translated():
                pipe = self.client.pipeline(transaction=False)
                for tenant in chunk:
                    base = keys.base(tenant)
                    pipe.zrange(keys.idle(base), 0, 0, withscores=True)
                    pipe.zrange(keys.created(base), 0, 0, withscores=True)
                replies = pipe.execute()
                pipe = self.client.pipeline(transaction=False)
                for i, tenant in enumerate(chunk):
                    bucket, member = keys.bucket_of(tenant), str(tenant)
                    for hint, first in (
                        (keys.due_idle, replies[2 * i]),
                        (keys.due_created, replies[2 * i + 1]),
                    ):
                        if first:
                            pipe.zadd(hint(bucket), {member: int(first[0][1])}, lt=True)
                pipe.execute()

    def _demote_group(self, taken: list[tuple[UUID, list[list[bytes]]]]) -> int:
        """Move the batches idle.lua read for several tenants: rows of (id, document,
        version, created_us, index suffixes, incarnation, generation)."""
        if not taken:
            return 0
        self._step("demote:read")
        if self._rc is not None:
            calls = []
            for tenant, batch in taken:
                base = keys.base(tenant)
                args: list[Any] = [base, self._rc.ttl_ms]
                for sid, data, version, _, _, n, g in batch:
                    args += [sid, n, version, g, self._rc.compress(data)]
                calls.append(([keys.idle(base)], args))
            moved = sum(int(m) for m in self._eval_many("demote", calls))
            self._refused(sum(len(batch) for _, batch in taken) - moved)
            return moved
        assert self._pg is not None
        rows = [(tenant, row) for tenant, batch in taken for row in batch]
        entries = [(text(row[5]), int(row[6]), row[1]) for _, row in rows]
        written, refused = self._pg.put(entries, self._clock() - self.max_age)
        if refused:
            self._quarantine([rows[i] for i in refused])
        self._step("demote:copied")
        # Only the copies the fence let through may be evicted; the others lost a race
        # (the session was promoted, changed or deleted since it was read) and stay hot.
        evict: dict[UUID, list[Any]] = {}
        for tenant, row in rows:
            if (tenant, UUID(text(row[0]))) in written:
                evict.setdefault(tenant, [keys.base(tenant), token()])
                evict[tenant] += [row[0], row[5], row[2], row[6]]
        chosen = sum((len(args) - 2) // 4 for args in evict.values())
        self._refused(len(rows) - len(refused) - chosen)
        calls = [([keys.idle(args[0]), keys.created(args[0])], args) for args in evict.values()]
        replies = self._eval_many("evict", calls)
        evicted = sum(1 for codes in replies for code in codes if code == b"e")
        # A copy whose hot session changed meanwhile stays in the table: the hot copy is the
        # truth, and the next demotion writes over it.
        self._refused(chosen - evicted)
        return evicted

    def _quarantine(self, rows: list[tuple[UUID, list[bytes]]]) -> None:
        """Set aside hot sessions the cold tier refused: they stay hot and readable, and leave
        the idle set so later passes do not read them again; their next save puts them back
        (a changed session may well be storable)."""
        now = keys.micros(self._clock())
        by_tenant: dict[UUID, list[Any]] = {}
        for tenant, row in rows:
            by_tenant.setdefault(tenant, [keys.base(tenant), now])
            by_tenant[tenant] += [row[0], row[5], row[2], row[6]]
        calls = [
            ([keys.idle(args[0]), keys.quarantine(args[0])], args) for args in by_tenant.values()
        ]
        self._eval_many("quarantine", calls)
        for tenant, row in rows:
            _log.warning(
                "session %s of tenant %s (version %s) cannot be stored in the cold tier; "
                "it stays hot until it changes",
                text(row[0]),
                tenant,
                text(row[2]),
            )

    def count_quarantined(self) -> int:
        """See :meth:`SessionStore.count_quarantined`."""
        return self._count(keys.quarantine, "+inf")

    def purge_expired(self, *, limit: int = 1000) -> int:
        """See :meth:`SessionStore.purge_expired`: visits only the tenants the hints say may
        have an expired session, :data:`GROUP` at a time, each step one round trip. A tenant
        left with nothing in Redis is taken off the registry (see :meth:`_prune`)."""
        check_limit(limit)
        cutoff = self._clock() - self.max_age
        cutoff_us = keys.micros(cutoff)
        removed = 0
        while removed < limit:
            due, more = self._due(keys.due_created, cutoff_us, limit)
            got = self._purge_tenants(deque(due), cutoff_us, limit - removed)
            removed += got
            if not more or got == 0:
                break
        if self._pg is not None and removed < limit:
            removed += self._pg.purge(cutoff, limit - removed)
        return removed

    def _purge_tenants(self, queue: deque[UUID], cutoff_us: int, limit: int) -> int:
        """Purge up to ``limit`` expired sessions of the tenants in ``queue``."""
        removed = 0
        while queue and removed < limit:
            budget = limit - removed
            group = [queue.popleft() for _ in range(min(GROUP, len(queue), budget))]
            # Shares that add up to no more than the budget; a tenant that used all of its
            # share may hold more, and comes round again.
            share = budget // len(group)
            calls = [
                ([keys.created(keys.base(t))], [keys.base(t), cutoff_us, share]) for t in group
            ]
            emptied, exhausted = [], []
            replies = self._eval_many("purge", calls)
            for tenant, (purged, left) in zip(group, replies, strict=True):
                removed += int(purged)
                if int(left) == 0:
                    emptied.append(tenant)
                elif int(purged) < share:
                    exhausted.append(tenant)
                else:
                    queue.append(tenant)
            self._prune(emptied)
            self._refresh(exhausted, keys.due_created, keys.created)
        return removed

    def _prune(self, tenants: list[UUID]) -> None:
        """Take tenants that hold nothing in Redis off the registry and the hints, without
        racing a session created meanwhile: a creation registers its tenant again after its
        script ran (see :meth:`RedisTiers._run`), and a tenant is put back here, due at
        once, if a session appeared before that."""
        if not tenants:
            return
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for tenant in tenants:
                bucket, member = keys.bucket_of(tenant), str(tenant)
                pipe.srem(keys.registry(bucket), member)
                pipe.zrem(keys.due_idle(bucket), member)
                pipe.zrem(keys.due_created(bucket), member)
            pipe.execute()
            self._step("prune:removed")
            pipe = self.client.pipeline(transaction=False)
            for tenant in tenants:
                pipe.exists(keys.created(keys.base(tenant)))
            back = [t for t, found in zip(tenants, pipe.execute(), strict=True) if found]
            pipe = self.client.pipeline(transaction=False)
            for tenant in back:
                self._register(pipe, tenant, 0, 0)
            pipe.execute()

    def count_idle(self) -> int:
        """See :meth:`SessionStore.count_idle`: the same sorted sets the sweep reads."""
        cutoff = keys.micros(self._clock() - self.hot_ttl)
        return self._count(keys.idle, cutoff)

    def count_expired(self) -> int:
        """See :meth:`SessionStore.count_expired`: the same sorted set and table the purge
        reads."""
        cutoff = self._clock() - self.max_age
        total = self._count(keys.created, keys.micros(cutoff))
        if self._pg is not None:
            total += self._pg.count_expired(cutoff)
        return total

    def _count(self, zset: Callable[[str], str], max_score: int | str) -> int:
        """The members scored at most ``max_score`` of one sorted set of every tenant."""
        tenants = list(self._tenants())
        if not tenants:
            return 0
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for tenant in tenants:
                pipe.zcount(zset(keys.base(tenant)), "-inf", max_score)
            return sum(int(n) for n in pipe.execute())

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
        for found in self._scan(q, now):
            if marked >= q.limit:
                break
            marked += self._mark(found, mark)
        return marked

    def _mark(self, found: Found, mark: PendingMigration) -> int:
        """Set the mark on one session in the tier it is in, only on the incarnation and
        version that was read; 1 if it landed."""
        session = found.session
        update = {"pending_migration": mark, "version": session.version + 1}
        stored, data = codec.encode(session.model_copy(update=update), self.max_bytes)
        base = keys.base(stored.tenant_id)
        expected = f"{session.version}:{keys.micros(session.created_at)}"
        with translated():
            in_hot = self.client.exists(keys.hot(base, stored.id)) == 1
        if not in_hot and self._pg is not None:

            def fence() -> bool:
                self._step("rewrite:locked")
                with translated():
                    return bool(
                        self._scripts["fence"](
                            keys=[keys.hot(base, stored.id)],
                            args=[base, str(stored.id), token()],
                            client=self.client,
                        )
                    )

            return int(
                self._pg.rewrite(
                    stored,
                    data,
                    incarnation=found.incarnation,
                    expected_version=session.version,
                    fence=fence,
                )
            )
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
            token(),
            "",
            found.incarnation,
            "",
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
            # SAMPLES 0 counts every field: the default 5 may leave out the document.
            pipe.memory_usage(key(base, text(sid)), samples=0)
        sizes = [size for size in pipe.execute() if size is not None]
        return sum(sizes) / len(sizes) if sizes else 0.0

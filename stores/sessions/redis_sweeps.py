"""The sweeps of the Redis session store: demotion, max-age purge, scenario migration marks,
and the tier statistics.

A sweep costs what it moves, not what the registry holds: it visits only the tenants the
hints of ``redis_hints.py`` say may have work due.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from stores.common.validation import check_limit
from stores.driver_errors import redis_translated
from stores.sessions import codec, keys, query, scripts
from stores.sessions.batch import failed
from stores.sessions.models import PendingMigration, TierStats
from stores.sessions.redis_base import BATCH, Found, RedisCore, text, token
from stores.sessions.redis_hints import Call, Sent, TenantHints
from stores.sessions.shards import Shard, buckets_of, check_shard

_log = logging.getLogger(__name__)

GROUP = 250
"""Tenants a demotion pass handles at once, each step in one round trip for all of them."""

_STATS_SAMPLE = 8
"""Keys per tenant and tier whose ``MEMORY USAGE`` is sampled by ``stats``."""


_Moved = tuple[int, dict[UUID, int | None], set[UUID]]
"""What a group's moves did: how many moved, the oldest idle score left per tenant, the
tenants taken off the registry (see ``Sweeps._send_moves``)."""


@dataclass(frozen=True)
class _Read:
    """A group's idle.lua read on its way: its tenants, the rows asked of each."""

    group: list[UUID]
    wanted: int
    sent: Sent


@dataclass(frozen=True)
class _Moving:
    """A group's moves on their way (``sent`` is None when it had nothing to move)."""

    group: list[UUID]
    exhausted: list[UUID]
    sent: Sent | None
    finish: Callable[[], _Moved]


def _busy(moving: deque[_Moving]) -> set[UUID]:
    """The tenants whose moves are on their way."""
    return {tenant for group in moving for tenant in group.group}


def _group_size(budget: int, first: bool, overlap: bool) -> int:
    """How many tenants the next group of a pass takes, for ``budget`` sessions still
    wanted. When groups overlap, the first is small, so that the pass starts moving soon,
    and the last ones halve the budget in turn, so that it ends soon after its last
    group's Python work: a pass waits on Redis only at its two ends."""
    if not overlap:
        return min(GROUP, budget)
    if first:
        return min(GROUP // 4, budget)
    return min(GROUP, budget, max(1, -(-budget // 2)) if budget < 2 * GROUP else GROUP)


def _next_group(queue: deque[UUID], size: int, busy: set[UUID]) -> list[UUID]:
    """Up to ``size`` tenants off the front of ``queue``, leaving those of ``busy`` on it,
    in their order (their steps are still on their way)."""
    group: list[UUID] = []
    held: list[UUID] = []
    while queue and len(group) < size:
        tenant = queue.popleft()
        (held if tenant in busy else group).append(tenant)
    queue.extendleft(reversed(held))
    return group


def _score(reply: bytes | str) -> int | None:
    """A sorted set score a script returned as text ('' for none), as an integer."""
    value = text(reply)
    return int(float(value)) if value else None


class Sweeps:
    """The periodic work of a RedisSessionStore (see :class:`SessionStore` for semantics)."""

    def __init__(self, core: RedisCore, hints: TenantHints) -> None:
        self._core = core
        self._hints = hints

    @property
    def _overlap(self) -> bool:
        """Whether consecutive groups of a pass overlap: on one Redis, with the hints kept
        by the scripts (see ``pending.py``); elsewhere each step waits for the last."""
        return self._core.hints_in_scripts and not self._core.cluster

    def demote_idle(self, *, limit: int = 1000, shard: Shard | None = None) -> int:
        """See :meth:`SessionStore.demote_idle`: visits only the tenants the hints say may
        have an idle session, :data:`GROUP` tenants at a time, each step of a group in one
        round trip (see the module docstring); with ``shard``, only its buckets' hints."""
        check_limit(limit)
        buckets = buckets_of(check_shard(shard))
        self._hints.reconcile_if_due(buckets)
        cutoff = keys.micros(self._core.clock() - self._core.hot_ttl)
        return self._visit_due(keys.due_idle, cutoff, limit, buckets, self._demote_tenants)

    def _visit_due(
        self,
        hint: Callable[[int], str],
        cutoff_us: int,
        limit: int,
        buckets: range,
        visit: Callable[[deque[UUID], int, int], int],
    ) -> int:
        """Hand the tenants the ``hint`` sets say are due by ``cutoff_us`` to ``visit``
        (tenants, cutoff, how many more it may handle) until ``limit`` is reached or none
        are left; how many it handled."""
        done = 0
        while done < limit:
            due, more = self._hints.due(hint, cutoff_us, limit, buckets)
            got = visit(deque(due), cutoff_us, limit - done)
            done += got
            # A pass that handled nothing stops even if more tenants look due: their hints
            # were early, and the next pass reads the rest.
            if not more or got == 0:
                break
        return done

    def _demote_tenants(self, queue: deque[UUID], cutoff: int, limit: int) -> int:
        """Demote up to ``limit`` idle sessions of the tenants in ``queue``, a group of
        tenants at a time: read their idle sessions, copy them to the cold tier, drop the
        hot copies.

        On one Redis consecutive groups overlap (see ``pending.py``): the next group's read
        goes out before this group moves, and this group's moves are read back only once
        the next group's have gone out, so Redis runs one group's scripts while this
        process packs or copies another's. No tenant is in two groups on their way at once
        (see :meth:`_send_read`): a read sees every earlier move of its tenants done."""
        overlap = self._overlap
        moved, budget = 0, limit
        read: _Read | None = None
        moving: deque[_Moving] = deque()
        try:
            while True:
                if read is None:
                    read = self._send_read(queue, cutoff, budget, _busy(moving), budget == limit)
                    if read is None:
                        if not moving:
                            return moved
                        moved += self._moved(moving.popleft())
                        continue
                found = read.sent.replies()
                group, wanted = read.group, read.wanted
                read = None
                taken, exhausted, budget = self._take(group, wanted, found, budget, queue)
                if overlap:
                    busy = _busy(moving) | set(group)
                    read = self._send_read(queue, cutoff, budget, busy, False)
                moving.append(_Moving(group, exhausted, *self._send_moves(taken)))
                while len(moving) > int(overlap):
                    moved += self._moved(moving.popleft())
        finally:
            if read is not None:
                read.sent.abandon()
            for left in moving:
                if left.sent is not None:
                    left.sent.abandon()

    def _send_read(
        self, queue: deque[UUID], cutoff: int, budget: int, busy: set[UUID], first: bool
    ) -> _Read | None:
        """Send idle.lua for the next group of ``queue``: no more tenants than sessions
        still wanted (a tenant read past the limit is read again by the next call), none
        of ``busy`` (their moves are still on their way; they stay queued). None if no
        tenant can go now."""
        group = _next_group(queue, _group_size(budget, first, self._overlap), busy)
        if not group:
            return None
        # An equal share each, so that a group never reads much more than it can move; a
        # tenant that filled its share comes round again.
        wanted = min(BATCH, max(1, budget // len(group)))
        calls: list[Call] = [(t, [], []) for t in group]
        return _Read(group, wanted, self._hints.send_many("idle", [cutoff, wanted], calls))

    @staticmethod
    def _take(
        group: list[UUID], wanted: int, found: list[Any], budget: int, queue: deque[UUID]
    ) -> tuple[list[tuple[UUID, list[list[bytes]]]], list[UUID], int]:
        """What idle.lua read for ``group``: each tenant's rows (within ``budget``), the
        tenants with nothing more due, and the budget left. A tenant that filled its share
        goes back on ``queue``."""
        taken: list[tuple[UUID, list[list[bytes]]]] = []
        exhausted: list[UUID] = []
        for tenant, flat in zip(group, found, strict=True):
            if failed(flat):
                continue  # its node is down: the tenant keeps its hint for later
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
        return taken, exhausted, budget

    def _moved(self, moving: _Moving) -> int:
        """Read back a group's moves; how many sessions moved. Without hints kept by the
        scripts, the hints of its tenants with nothing more due move on."""
        got, oldest, pruned = moving.finish()
        if not self._core.hints_in_scripts:
            # A pruned tenant's hints are gone already (its prune looked again, as a refresh
            # would: see TenantHints.prune).
            left = [t for t in moving.exhausted if t not in pruned]
            self._hints.refresh(left, keys.due_idle, keys.idle, known=oldest)
        return got

    def _send_moves(
        self, taken: list[tuple[UUID, list[list[bytes]]]]
    ) -> tuple[Sent | None, Callable[[], _Moved]]:
        """Send the moves of the batches idle.lua read for several tenants: rows of (id,
        document, version, created_us, index suffixes, incarnation, generation). Returns
        the script calls on their way, and what reads them back: how many moved, the
        oldest idle score each tenant whose move script ran was left with (None: none
        left), read by that script after its moves, and the tenants taken off the registry
        because they hold nothing in Redis any more (PostgreSQL cold tier)."""
        if not taken:
            return None, lambda: (0, {}, set())
        self._core.step("demote:read")
        cold = self._core.cold_tier
        if cold.in_redis:
            calls: list[Call] = []
            for tenant, batch in taken:
                args: list[Any] = []
                for sid, data, version, _, _, n, g in batch:
                    args += [sid, n, version, g, cold.pack(data)]
                ids = [text(row[0]) for row in batch]
                calls.append((tenant, keys.sessions_keys(keys.base(tenant), ids), args))
            sent = self._hints.send_many("demote", [cold.ttl_ms], calls)

            def demoted() -> _Moved:
                replies = sent.replies()
                moved = sum(int(r[0]) for r in replies if not failed(r))
                self._core.refused(sum(len(batch) for _, batch in taken) - moved)
                oldest = {
                    tenant: _score(r[1])
                    for (tenant, _), r in zip(taken, replies, strict=True)
                    if not failed(r)
                }
                return moved, oldest, set()

            return sent, demoted
        rows = [(tenant, row) for tenant, batch in taken for row in batch]
        entries = [(text(row[5]), int(row[6]), row[1]) for _, row in rows]
        written, refused = cold.put(entries, self._core.clock() - self._core.max_age)
        if refused:
            self._quarantine([rows[i] for i in refused])
        self._core.step("demote:copied")
        # Only the copies the fence let through may be evicted; the others lost a race
        # (the session was promoted, changed or deleted since it was read) and stay hot.
        evict: dict[UUID, list[Any]] = {}
        for tenant, row in rows:
            if (tenant, UUID(text(row[0]))) in written:
                evict.setdefault(tenant, []).extend([row[0], row[5], row[2], row[6]])
        chosen = sum(len(args) // 4 for args in evict.values())
        self._core.refused(len(rows) - len(refused) - chosen)
        calls = [
            (tenant, keys.sessions_keys(keys.base(tenant), [text(i) for i in args[::4]]), args)
            for tenant, args in evict.items()
        ]
        sent = self._hints.send_many("evict", [token()], calls)
        return sent, lambda: self._evicted(sent, list(evict), chosen)

    def _evicted(self, sent: Sent, tenants: list[UUID], chosen: int) -> _Moved:
        """Read back evict.lua's replies for ``tenants`` (``chosen`` sessions): see
        :meth:`_send_moves`."""
        replies = sent.replies()
        # A tenant whose node failed keeps its hot copies: the next sweep evicts them.
        evicted = sum(
            1 for reply in replies if not failed(reply) for code in reply[:-2] if code == b"evicted"
        )
        # A copy whose hot session changed meanwhile stays in the table: the hot copy is the
        # truth, and the next demotion writes over it.
        self._core.refused(chosen - evicted)
        oldest = {
            tenant: _score(reply[-2])
            for tenant, reply in zip(tenants, replies, strict=True)
            if not failed(reply)
        }
        # A tenant left with nothing in Redis leaves the registry and both hints now, or
        # every purge until the next reconcile would visit it for nothing.
        emptied = [
            tenant
            for tenant, reply in zip(tenants, replies, strict=True)
            if not failed(reply) and int(reply[-1]) == 0
        ]
        if not self._core.hints_in_scripts:  # else the script took them off
            self._hints.prune(emptied)
        for tenant in emptied:
            oldest.pop(tenant, None)
        return evicted, oldest, set(emptied)

    def _quarantine(self, rows: list[tuple[UUID, list[bytes]]]) -> None:
        """Set aside hot sessions the cold tier refused: they stay hot and readable, and leave
        the idle set so later passes do not read them again; their next save puts them back
        (a changed session may well be storable)."""
        by_tenant: dict[UUID, list[Any]] = {}
        for tenant, row in rows:
            by_tenant.setdefault(tenant, []).extend([row[0], row[5], row[2], row[6]])
        calls = [
            (
                tenant,
                keys.sessions_keys(keys.base(tenant), [text(i) for i in args[::4]], cold_too=False),
                args,
            )
            for tenant, args in by_tenant.items()
        ]
        self._hints.eval_many("quarantine", [keys.micros(self._core.clock())], calls)
        self._core.quarantined(len(rows))
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

    def purge_expired(self, *, limit: int = 1000, shard: Shard | None = None) -> int:
        """See :meth:`SessionStore.purge_expired`: visits only the tenants the hints say may
        have an expired session, :data:`GROUP` at a time, each step one round trip. A tenant
        left with nothing in Redis is taken off the registry (see
        :meth:`TenantHints.prune`). With ``shard``, only its buckets' hints, and only its
        tenants' rows of the cold table."""
        check_limit(limit)
        shard = check_shard(shard)
        buckets = buckets_of(shard)
        cutoff = self._core.clock() - self._core.max_age
        cutoff_us = keys.micros(cutoff)
        removed = self._visit_due(keys.due_created, cutoff_us, limit, buckets, self._purge_tenants)
        if removed < limit:
            removed += self._core.cold_tier.purge(cutoff, limit - removed, shard=shard)
        return removed

    def _purge_tenants(self, queue: deque[UUID], cutoff_us: int, limit: int) -> int:
        """Purge up to ``limit`` expired sessions of the tenants in ``queue``, a group of
        tenants at a time. On one Redis two groups are on their way at once, as in
        :meth:`_demote_tenants`, each with a share of the limit set aside."""
        overlap = self._overlap
        removed, budget = 0, limit
        purging: deque[tuple[list[UUID], int, Sent]] = deque()
        try:
            while True:
                busy = {t for group, _, _ in purging for t in group}
                group = _next_group(queue, min(GROUP, budget), busy)
                if group:
                    # Shares that add up to no more than the budget, leaving some for the
                    # next group when more tenants wait; a tenant that used all of its
                    # share may hold more, and comes round again.
                    waiting = len(group) + (len(queue) if overlap else 0)
                    share = max(1, budget // min(waiting, 2 * GROUP))
                    budget -= share * len(group)
                    calls: list[Call] = [(t, [], []) for t in group]
                    sent = self._hints.send_many("purge", [cutoff_us, share], calls)
                    purging.append((group, share, sent))
                    if overlap and len(purging) < 2 and budget > 0 and queue:
                        continue
                if not purging:
                    return removed
                group, share, sent = purging.popleft()
                purged, unused = self._purged(group, share, sent.replies(), queue)
                removed += purged
                budget += unused
        finally:
            for _, _, left in purging:
                left.abandon()

    def _purged(
        self, group: list[UUID], share: int, replies: list[Any], queue: deque[UUID]
    ) -> tuple[int, int]:
        """Take in purge.lua's replies for ``group``: how many sessions it removed, and
        how much of the shares it left unused. A tenant that used its whole share goes back
        on ``queue``."""
        removed = 0
        emptied, exhausted = [], []
        for tenant, reply in zip(group, replies, strict=True):
            if failed(reply):
                continue  # its node is down: the tenant keeps its hint for later
            purged, left = int(reply[0]), int(reply[1])
            removed += purged
            if left == 0:
                emptied.append(tenant)
            elif purged < share:
                exhausted.append(tenant)
            else:
                queue.append(tenant)
        if not self._core.hints_in_scripts:  # else the scripts did both
            self._hints.prune(emptied)
            self._hints.refresh(exhausted, keys.due_created, keys.created)
        return removed, share * len(group) - removed

    def count_idle(self) -> int:
        """See :meth:`SessionStore.count_idle`: the same sorted sets the sweep reads."""
        cutoff = keys.micros(self._core.clock() - self._core.hot_ttl)
        return self._count(keys.idle, cutoff)

    def oldest_idle_since(self) -> datetime | None:
        """See :meth:`SessionStore.oldest_idle_since`: the lowest score of every idle set."""
        tenants = list(self._hints.tenants())
        if not tenants:
            return None
        pipe = self._core.client.pipeline(transaction=False)
        for tenant in tenants:
            pipe.zrange(keys.idle(keys.base(tenant)), 0, 0, withscores=True)
        firsts = [int(row[0][1]) for row in pipe.execute() if row]
        return keys.from_micros(min(firsts)) if firsts else None

    def count_expired(self) -> int:
        """See :meth:`SessionStore.count_expired`: the same sorted set and table the purge
        reads."""
        cutoff = self._core.clock() - self._core.max_age
        total = self._count(keys.created, keys.micros(cutoff))
        total += self._core.cold_tier.count_expired(cutoff)
        return total

    def _count(self, zset: Callable[[str], str], max_score: int | str) -> int:
        """The members scored at most ``max_score`` of one sorted set of every tenant."""
        tenants = list(self._hints.tenants())
        if not tenants:
            return 0
        pipe = self._core.client.pipeline(transaction=False)
        for tenant in tenants:
            pipe.zcount(zset(keys.base(tenant)), "-inf", max_score)
        return sum(int(n) for n in pipe.execute())

    def mark_pending_migration(self, q: query.Query, migration: PendingMigration) -> int:
        """See :meth:`SessionStore.mark_pending_migration`; ``q`` finds the sessions of the
        scenario version without a mark."""
        now = self._core.clock()
        mark = query.checked_migration(migration, q, now)
        marked = 0
        for found in self._core.scan(q, now):
            if marked >= q.limit:
                break
            marked += self._mark(found, mark)
        return marked

    def _mark(self, found: Found, mark: PendingMigration) -> int:
        """Set the mark on one session in the tier it is in, only on the incarnation and
        version that was read; 1 if it landed."""
        session = found.session
        update = {"pending_migration": mark, "version": session.version + 1}
        stored, data = codec.encode(session.model_copy(update=update), self._core.max_bytes)
        base = keys.base(stored.tenant_id)
        expected = f"{session.version}:{keys.micros(session.created_at)}"
        in_hot = self._core.client.exists(keys.hot(base, stored.id)) == 1
        if not in_hot and not self._core.cold_tier.in_redis:

            def fence() -> bool:
                self._core.step("rewrite:locked")
                with redis_translated():
                    return bool(
                        scripts.run(
                            self._core.client,
                            self._core.scripts["fence"],
                            keys.session_keys(base, stored.id),
                            [str(stored.id), token()],
                        )
                    )

            return int(
                self._core.cold_tier.rewrite(
                    stored,
                    data,
                    incarnation=found.incarnation,
                    expected_version=session.version,
                    fence=fence,
                )
            )
        target = "H" if in_hot else "C"
        if target == "C":
            data = self._core.cold_tier.pack(data)
        # An in-place rewrite leaves the idle time as it is (no now_us).
        args = self._core.save_args(
            stored,
            data,
            expected,
            self._core.clock(),
            now_us="",
            row="none",
            target=target,
            call=token(),
            incarnation=found.incarnation,
        )
        return int(self._core.run("save", stored.tenant_id, stored.id, args.argv())[0] == b"ok")

    def stats(self) -> TierStats:
        """See :meth:`SessionStore.stats`: Redis bytes are sampled with ``MEMORY USAGE``."""
        stats = TierStats()
        for tenant in self._hints.tenants():
            base = keys.base(tenant)
            pipe = self._core.client.pipeline(transaction=False)
            pipe.zcard(keys.idle(base))
            pipe.zcard(keys.created(base))
            pipe.zrandmember(keys.idle(base), _STATS_SAMPLE)
            pipe.zrandmember(keys.created(base), _STATS_SAMPLE)
            hot_count, held, hot_sample, held_sample = pipe.execute()
            hot_bytes = self._sample(base, keys.hot, hot_sample or [])
            stats.hot_sessions += hot_count
            stats.hot_bytes += int(hot_bytes * hot_count)
            if self._core.cold_tier.in_redis:
                cold_count = max(held - hot_count, 0)
                cold_bytes = self._sample(base, keys.cold, held_sample or [])
                stats.cold_sessions += cold_count
                stats.cold_bytes += int(cold_bytes * cold_count)
        rows = self._core.cold_tier.stats()
        if rows is not None:
            stats.cold_sessions, stats.cold_bytes = rows
        return stats

    def _sample(self, base: str, key: Callable[[str, str], str], ids: list[bytes]) -> float:
        """The mean ``MEMORY USAGE`` of the sampled sessions present in that tier."""
        pipe = self._core.client.pipeline(transaction=False)
        for sid in ids:
            # SAMPLES 0 counts every field: the default 5 may leave out the document.
            pipe.memory_usage(key(base, text(sid)), samples=0)
        sizes = [size for size in pipe.execute() if size is not None]
        return sum(sizes) / len(sizes) if sizes else 0.0

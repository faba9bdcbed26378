"""The sweeps' bookkeeping: which tenants may have work due, kept in hash-tagged buckets.

For each registry bucket, a hint sorted set scores every tenant no later than its oldest
idle time (demotion) and its oldest created_at (purge), so one round trip finds the tenants
that may have work due.

On one Redis, the sweep scripts take many tenants per call, their hint keys with them, and
set each visited tenant's hints to its exact oldest scores, or take it off the registry,
inside the script (``settle`` in ``lua/lib.lua``): a pass costs a few round trips per group
of tenants, and nothing can come between a move and its hint.

On a Redis Cluster the hints live in other slots than the tenants' keys, so scripts cannot
update them (set :attr:`RedisCore.hints_in_scripts` false to take this way on one Redis):
writers lower them (``ZADD LT``) before and after a script that adds a session to a
tenant's sets, and a sweep that visited a tenant sets its hint to what is left, then looks
again. A hint may be early (a wasted visit) but is never late, except after a client died
between its script and its hint, which a full pass every :data:`RECONCILE_EVERY` repairs.
Every step goes node by node (``batch.py``): keys on a master that is down are skipped, and
looked at again later.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from stores.driver_errors import redis_translated
from stores.errors import StoreUnavailableError
from stores.sessions import keys, scripts
from stores.sessions.batch import Batch, failed, raise_errors
from stores.sessions.pending import Pending
from stores.sessions.redis_base import RedisCore, text

Call = tuple[UUID, list[str], list[Any]]
"""One tenant's part of a sweep script call: the tenant, its session keys, its arguments
(the script's tenant keys are added: ``keys.SWEEP_TENANT_KEYS``)."""

SCRIPT_KEYS = 1200
"""Keys per sweep script call over several tenants (one Redis): short scripts, few calls."""

REBUILD_EVERY = timedelta(minutes=10)
"""How often, at most, a sweep finding the tenant registry empty rebuilds it from a SCAN."""

RECONCILE_EVERY = timedelta(minutes=10)
"""How often, at most, a store's demotion sweep walks every tenant to repair late hints."""


class TenantHints:
    """The registry and hints that the sweeps of ``redis_sweeps.py`` read and keep."""

    def __init__(self, core: RedisCore) -> None:
        self._core = core
        self._rebuilt_at: datetime | None = None
        self._reconciled_at: dict[int, datetime] = {}
        """When each registry bucket's hints were last reconciled."""

    def tenants(
        self, *, partial: bool = False, buckets: Collection[int] | None = None
    ) -> Iterator[UUID]:
        """Every registered tenant, bucket by bucket (sweeps that must see them all), or
        those of ``buckets`` only. With ``partial``, buckets on cluster nodes that are down
        are skipped."""
        members: list[bytes] = []
        wanted = range(keys.REGISTRY_BUCKETS) if buckets is None else sorted(set(buckets))
        for bucket in wanted:
            try:
                with redis_translated():
                    members += self._core.client.sscan_iter(keys.registry(bucket), count=1000)
            except StoreUnavailableError:
                if not (partial and self._core.cluster):
                    raise
        with redis_translated():
            if not members and self._rebuild_due():
                members = self._rebuild_registry()
        owned = set(wanted)
        for member in members:
            tenant = UUID(text(member))
            if keys.bucket_of(tenant) in owned:  # a rebuild registers every bucket's
                yield tenant

    def _rebuild_due(self) -> bool:
        now = self._core.clock()
        if self._rebuilt_at is not None and now - self._rebuilt_at < REBUILD_EVERY:
            return False
        self._rebuilt_at = now
        return True

    def _rebuild_registry(self) -> list[bytes]:
        """Register again every tenant that holds sessions in Redis, found by a SCAN: the
        registry is empty, which it also is when it was lost. Their hints are set to the
        earliest possible times, so the next sweeps visit each once and correct them."""
        found = self.scan_tenants(partial=False)
        pipe = self._core.client.pipeline(transaction=False)
        for member in found:
            self._core.register(pipe, UUID(text(member)), 0, 0)
        pipe.execute()
        return found

    def scan_tenants(self, *, partial: bool) -> list[bytes]:
        """Every tenant holding sessions in Redis, from a SCAN of every master (on a cluster,
        with ``partial``, the masters that are down are skipped)."""
        pattern = keys.PREFIX + "{*}:created"
        found: set[bytes] = set()
        if not isinstance(self._core.client, RedisCluster):
            scans = [self._core.client.scan_iter(match=pattern, count=1000)]
        else:
            scans = [
                self._core.client.scan_iter(match=pattern, count=1000, target_nodes=node)
                for node in self._core.client.get_primaries()  # type: ignore[no-untyped-call]
            ]
        for scan in scans:
            try:
                with redis_translated():
                    found.update(key.split(b"{", 1)[1].split(b"}", 1)[0] for key in scan)
            except StoreUnavailableError:
                if not partial:
                    raise
        return sorted(found)

    def eval_many(self, name: str, common: list[Any], calls: list[Call]) -> list[Any]:
        """Run sweep script ``name`` over tenants: ``common`` arguments, then per (tenant,
        session keys, arguments) one segment (see ``segments`` in ``lua/lib.lua``), the
        tenant's keys the script uses first (``keys.SWEEP_TENANT_KEYS``). The replies per
        tenant, in order, where a tenant whose cluster node failed has the error (see
        ``batch.failed``).

        On a cluster each tenant is a call of its own (its slot), a round trip per node. On
        one Redis, with :attr:`hints_in_scripts`, many tenants share a call, hint keys
        included, so that the script keeps their hints itself (``settle``): a sweep then
        costs a few round trips per group of tenants, not several per tenant."""
        return self.send_many(name, common, calls).replies()

    def send_many(self, name: str, common: list[Any], calls: list[Call]) -> Sent:
        """:meth:`eval_many`, sent now; its replies are read by :meth:`Sent.replies`. On one
        Redis the calls go out on a connection of their own and nothing waits for them
        meanwhile (see ``pending.py``); on a cluster they run at once, node by node."""
        if not calls:
            return Sent([], list)
        script = self._core.scripts[name]
        commands: list[tuple[list[str], list[Any]]] = []
        shapes: list[int] = []
        for chunk in self._chunks(calls):
            script_keys: list[str] = []
            args = list(common)
            hints: dict[int, int] = {}  # bucket -> KEYS index (1-based) of its hint keys
            for tenant, session_keys, own_args in chunk:
                script_keys += keys.sweep_tenant_keys(keys.base(tenant), name)
                script_keys += session_keys
                hint = 0
                if self._core.hints_in_scripts:
                    bucket = keys.bucket_of(tenant)
                    hint = hints.get(bucket, 0)
                    if not hint:
                        # The first tenant of its bucket in this call brings the bucket's
                        # hint keys; the next ones point at them.
                        hint = hints[bucket] = len(script_keys) + 1
                        script_keys += keys.hint_keys(bucket)
                args += [len(own_args), hint, *own_args]
            commands.append((script_keys, args))
            shapes.append(len(chunk))
        if self._core.cluster:
            done = self._again(script, commands, self._execute(script, commands))
            return Sent(shapes, lambda: done)
        client = self._core.client
        assert isinstance(client, redis.Redis)
        with redis_translated():
            pending = Pending(client, [scripts.evalsha_command(script, k, a) for k, a in commands])

        def read() -> list[Any]:
            replies = raise_errors(pending.replies(), keep=(NoScriptError,))
            return self._again(script, commands, replies)

        return Sent(shapes, read, pending)

    def _execute(self, script: Script, commands: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run script calls ``commands`` now, node by node; a call a server answered
        NOSCRIPT has the error in its place (see :meth:`_again`)."""
        batch = Batch(self._core.client)
        for script_keys, args in commands:
            command = scripts.evalsha_command(script, script_keys, args)
            batch.add(script_keys[0], "execute_command", *command)
        return self.execute_partly(batch, keep=(NoScriptError,))

    def _again(
        self, script: Script, commands: list[tuple[list[str], list[Any]]], replies: list[Any]
    ) -> list[Any]:
        """The replies of script calls ``commands``, where a call a server answered
        NOSCRIPT ran nothing: it goes again with the script's source, which that server
        then keeps (loading it on every node instead would fail for all while one node is
        down)."""
        if not any(isinstance(r, NoScriptError) for r in replies):
            return replies
        again = Batch(self._core.client)
        for (script_keys, args), reply in zip(commands, replies, strict=True):
            if isinstance(reply, NoScriptError):
                command = scripts.eval_command(script, script_keys, args)
                again.add(script_keys[0], "execute_command", *command)
        redone = iter(self.execute_partly(again))
        return [next(redone) if isinstance(r, NoScriptError) else r for r in replies]

    def _chunks(self, calls: list[Call]) -> Iterator[list[Call]]:
        """The tenants of each script call: one each on a cluster (a call holds one slot),
        else as many as fit in :data:`SCRIPT_KEYS` keys (at least one)."""
        if self._core.cluster:
            yield from ([call] for call in calls)
            return
        chunk: list[Call] = []
        size = 0
        for call in calls:
            # A tenant's keys, its session keys and (at most) its bucket's hint keys.
            own = 5 + len(call[1]) + 3
            if chunk and size + own > SCRIPT_KEYS:
                yield chunk
                chunk, size = [], 0
            chunk.append(call)
            size += own
        if chunk:
            yield chunk

    def due(
        self, hint: Callable[[int], str], cutoff: int, limit: int, buckets: range
    ) -> tuple[list[UUID], bool]:
        """Tenants of ``buckets`` whose hint is at or before ``cutoff``, a page per bucket in
        one round trip whatever the number of tenants; and whether some bucket had more than
        a page."""
        page = max(8, 2 * -(-limit // len(buckets)))
        batch = Batch(self._core.client)
        for bucket in buckets:
            batch.add(
                hint(bucket), "zrangebyscore", hint(bucket), "-inf", cutoff, start=0, num=page
            )
        # A bucket whose node is down is skipped: its tenants wait for the next sweep.
        pages = [members for members in batch.execute() if not failed(members)]
        due = [UUID(text(m)) for members in pages for m in members]
        return due, any(len(members) == page for members in pages)

    def refresh(
        self,
        tenants: list[UUID],
        hint: Callable[[int], str],
        zset: Callable[[str], str],
        *,
        known: dict[UUID, int | None] | None = None,
    ) -> None:
        """Set each tenant's hint to the oldest score of its ``zset`` after a sweep visited
        it (or drop it if the set is empty), then look again: a session that entered the set
        meanwhile lowers it back (its writer also does, after its script; the hint may end
        early, which costs a visit, never late, which would skip work). Each step is one
        round trip for all the tenants. ``known`` holds oldest scores already read, after
        the sweep's last change to the set (by the script that made it): those tenants'
        sets are not read again before the hint is written."""
        if not tenants:
            return
        known = known or {}
        sets = [zset(keys.base(t)) for t in tenants]
        places = [(hint(keys.bucket_of(t)), str(t)) for t in tenants]
        unknown = [i for i, t in enumerate(tenants) if t not in known]
        read = iter(self.oldest_many([sets[i] for i in unknown]))
        first = [known[t] if t in known else next(read) for t in tenants]
        self._core.step("refresh:read")
        gone: dict[str, list[str]] = {}
        later: dict[str, dict[str, int]] = {}
        for (key, member), score in zip(places, first, strict=True):
            if failed(score):
                continue  # the tenant's node is down: its hint stays as it is (early)
            if score is None:
                gone.setdefault(key, []).append(member)
            else:
                later.setdefault(key, {})[member] = score
        # One command per bucket, not per tenant: a sweep's cost is its commands.
        batch = Batch(self._core.client)
        for key, members in gone.items():
            batch.add(key, "zrem", key, *members)
        for key, mapping in later.items():
            batch.add(key, "zadd", key, mapping)
        self.execute_partly(batch)
        again = self.oldest_many(sets)
        lower: dict[str, dict[str, int]] = {}
        for (key, member), before, now in zip(places, first, again, strict=True):
            if failed(before):
                continue
            if failed(now) or (now is not None and (before is None or now < before)):
                # Unknown now, or a session came in: due again, at once if unknown.
                lower.setdefault(key, {})[member] = 0 if failed(now) else now
        batch = Batch(self._core.client)
        for key, mapping in lower.items():
            batch.add(key, "zadd", key, mapping, lt=True)
        self.execute_partly(batch)

    def oldest_many(self, zsets: list[str]) -> list[Any]:
        """The lowest score of each sorted set (None if empty; a node's error if it failed)."""
        batch = Batch(self._core.client)
        for zset in zsets:
            batch.add(zset, "zrange", zset, 0, 0, withscores=True)
        return [r if failed(r) else int(r[0][1]) if r else None for r in self.execute_partly(batch)]

    def execute_partly(self, batch: Batch, keep: tuple[type[BaseException], ...] = ()) -> list[Any]:
        """Run ``batch``; on a cluster, when every node it needed failed, the replies are
        all errors instead of an exception (the caller skips what it could not do; a sweep
        stops only when no registry bucket can be read)."""
        try:
            return batch.execute(keep)
        except StoreUnavailableError as exc:
            if not self._core.cluster:
                raise
            return [exc] * len(batch)

    def reconcile_if_due(self, buckets: range) -> None:
        """Now and then, lower the hints of every registered tenant of ``buckets`` to its
        oldest scores: hints are written beside the scripts, so a client dying between the
        two can leave one late; this repairs it (a late hint delays work by at most
        RECONCILE_EVERY). Each bucket keeps its own time, so a sweep of one shard repairs
        that shard's buckets only, and the shards' sweeps together repair them all.

        On a cluster the registry itself can lack tenants: a master that restarted empty
        lost its buckets, and a creation goes ahead while its bucket's master is down. So
        the tenants holding keys are found by a SCAN of the masters and registered too.
        Masters that are down are skipped, and the next reconcile looks again."""
        now = self._core.clock()
        due = [
            b
            for b in buckets
            if b not in self._reconciled_at or now - self._reconciled_at[b] >= RECONCILE_EVERY
        ]
        if not due:
            return
        for bucket in due:
            self._reconciled_at[bucket] = now
        wanted = set(due)
        tenants = list(self.tenants(partial=True, buckets=wanted))
        if self._core.cluster:
            known = set(tenants)
            found = [UUID(text(m)) for m in self.scan_tenants(partial=True)]
            unknown = [t for t in found if t not in known and keys.bucket_of(t) in wanted]
            batch = Batch(self._core.client)
            for tenant in unknown:
                registry = keys.registry(keys.bucket_of(tenant))
                batch.add(registry, "sadd", registry, str(tenant))
            self.execute_partly(batch)
            tenants += unknown
        for start in range(0, len(tenants), 500):
            chunk = tenants[start : start + 500]
            firsts = self.oldest_many(
                [zset(keys.base(t)) for t in chunk for zset in (keys.idle, keys.created)]
            )
            lower: dict[str, dict[str, int]] = {}
            for i, tenant in enumerate(chunk):
                bucket, member = keys.bucket_of(tenant), str(tenant)
                for hint, first in (
                    (keys.due_idle, firsts[2 * i]),
                    (keys.due_created, firsts[2 * i + 1]),
                ):
                    if first is not None and not failed(first):
                        lower.setdefault(hint(bucket), {})[member] = first
            batch = Batch(self._core.client)
            for key, mapping in lower.items():
                batch.add(key, "zadd", key, mapping, lt=True)
            self.execute_partly(batch)

    def prune(self, tenants: list[UUID]) -> None:
        """Take tenants that hold nothing in Redis off the registry and the hints, without
        racing a session created meanwhile: a creation registers its tenant again after its
        script ran (see :meth:`RedisCore.run`), and a tenant is put back here, due at
        once, if a session appeared before that."""
        if not tenants:
            return
        by_bucket: dict[int, list[str]] = {}
        for tenant in tenants:
            by_bucket.setdefault(keys.bucket_of(tenant), []).append(str(tenant))
        batch = Batch(self._core.client)
        for bucket, members in by_bucket.items():
            batch.add(keys.registry(bucket), "srem", keys.registry(bucket), *members)
            for key in (keys.due_idle(bucket), keys.due_created(bucket)):
                batch.add(key, "zrem", key, *members)
        self.execute_partly(batch)
        self._core.step("prune:removed")
        batch = Batch(self._core.client)
        for tenant in tenants:
            batch.add(keys.created(keys.base(tenant)), "exists", keys.created(keys.base(tenant)))
        # A tenant whose node did not answer may hold sessions: it goes back, to be sure.
        back = [
            t
            for t, found in zip(tenants, self.execute_partly(batch), strict=True)
            if failed(found) or found
        ]
        batch = Batch(self._core.client)
        for tenant in back:
            self._core.register(_Queue(batch), tenant, 0, 0)
        self.execute_partly(batch)


class _Queue:
    """:meth:`RedisCore.register`'s view of a :class:`Batch`: pipeline calls, each routed
    by its first argument (the key)."""

    def __init__(self, batch: Batch) -> None:
        self._batch = batch

    def sadd(self, key: str, *members: str) -> None:
        self._batch.add(key, "sadd", key, *members)

    def zadd(self, key: str, mapping: dict[str, int], **options: Any) -> None:
        self._batch.add(key, "zadd", key, mapping, **options)


class Sent:
    """Sweep script calls sent by :meth:`TenantHints.send_many`: :meth:`replies` gives the
    replies per tenant, read by ``read`` (from ``pending`` if they are still on their
    way)."""

    def __init__(
        self, shapes: list[int], read: Callable[[], list[Any]], pending: Pending | None = None
    ) -> None:
        self._shapes = shapes
        self._read = read
        self._pending = pending

    def replies(self) -> list[Any]:
        """The replies per tenant, in order (see :meth:`TenantHints.eval_many`)."""
        with redis_translated():
            raw = self._read()
        out: list[Any] = []
        for reply, count in zip(raw, self._shapes, strict=True):
            out += [reply] * count if failed(reply) else reply
        return out

    def abandon(self) -> None:
        """Give up replies never read (a sweep that stopped on an error)."""
        if self._pending is not None:
            self._pending.abandon()

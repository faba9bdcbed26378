"""What the parts of the Redis session store share: the client, the cold tier, the scripts
and the settings, the per-session script runs and the reads of both tiers.

:class:`RedisCore` is held by the store (``redis.py``: single sessions, listings) and by its
parts: the sweeps (``redis_sweeps.py``), their registry and hints (``redis_hints.py``) and
the promotions that reads and saves set off (``redis_moves.py``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from stores.common.clock import Clock
from stores.driver_errors import redis_translated
from stores.errors import StoreUnavailableError
from stores.sessions import clients, codec, keys, query, scripts
from stores.sessions.coldtier import ColdTier, RedisColdTier
from stores.sessions.models import Session
from stores.sessions.scripts import register

_log = logging.getLogger(__name__)

BATCH = 250
"""Sessions per script call in sweeps and listings: keeps each script short."""

MAX_ATTEMPTS = 20
"""How often an operation starts again when a session moved or changed under it."""


def text(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def token() -> str:
    """A fresh random token (fence tokens, incarnations, save-call tokens)."""
    return os.urandom(8).hex()


@dataclass(frozen=True)
class Found:
    """A session a listing found, with the incarnation of the copy it was read from."""

    session: Session
    incarnation: str


class RedisCore:
    """What the parts of a RedisSessionStore share: the Redis client, the cold tier, the
    scripts and the settings, with the per-session script runs and the reads of both tiers
    that the store and its sweeps both need."""

    def __init__(
        self,
        client: clients.Client,
        cold_tier: ColdTier | None,
        settings: tuple[timedelta, timedelta, Clock, int],
    ) -> None:
        # The store's arguments, checked here: (hot_ttl, max_age, clock, max_bytes).
        hot_ttl, max_age, clock, max_bytes = settings
        codec.check_durations(hot_ttl, max_age)
        self.hot_ttl = hot_ttl
        self.max_age = max_age
        self.max_bytes = codec.check_max_bytes(max_bytes)
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self.hints_in_scripts = not self.cluster
        """Whether the sweep scripts keep the sweeps' hints and registry themselves, many
        tenants per call: on one Redis, where they can (see ``redis_hints.py``). On a
        cluster the hints live in other slots and are kept beside the scripts instead;
        setting this false on one Redis takes that way too (tests do, to exercise it)."""
        self.clock = clock
        if cold_tier is None:
            cold_tier = RedisColdTier(ttl=max_age + timedelta(days=1))
        self.cold_tier: ColdTier = cold_tier
        """Where idle sessions go: rows in PostgreSQL, or compressed copies in Redis."""
        self.scripts = register(client)
        self.step_hook: Callable[[str], None] | None = None
        """Called with a step's name between the steps of tier moves (tests pause there)."""
        self._refusals = 0
        self._quarantined = 0
        self._refusals_lock = threading.Lock()

    @property
    def fence_refusals(self) -> int:
        """How often a fenced step refused to act on a copy that had changed since it was
        read (a demotion, eviction or promotion that lost a race), since the store opened."""
        return self._refusals

    def unmovable_counts(self) -> dict[str, int]:
        """See :meth:`SessionStore.unmovable_counts`."""
        with self._refusals_lock:
            return {"quarantined": self._quarantined, "changed": self._refusals}

    def refused(self, count: int = 1) -> None:
        """Count fenced steps that refused to act on a copy that changed under them."""
        if count:
            with self._refusals_lock:
                self._refusals += count

    def quarantined(self, count: int) -> None:
        """Count sessions set aside because the cold tier refused them."""
        with self._refusals_lock:
            self._quarantined += count

    def step(self, name: str) -> None:
        """Call the step hook, if any, with the name of the step just done."""
        if self.step_hook is not None:
            self.step_hook(name)

    def scan(self, q: query.Query, now: datetime) -> Iterator[Found]:
        """Sessions matching ``q`` in id order, merging the Redis index with the cold table.

        Each round reads a batch of ids from each source; only ids up to the smallest last
        id of a full batch are certain to be complete, so the next round starts there. The
        index is read before the table: a session demoted in between has its row by then
        (the row is written before the hot copy goes), and a promoted one keeps its row,
        so no live session is missed while it moves.
        """
        index = keys.index(keys.base(q.tenant_id), keys.query_suffix(q))
        cutoff = now - self.max_age
        after = q.after
        batch = min(q.limit + 1, BATCH)
        while True:
            sources = [self._index_ids(index, after, batch)]
            self.step("list:index")
            sources.append(self.cold_tier.find_ids(q, after, batch, cutoff))
            bounds = [ids[-1] for ids in sources if len(ids) == batch]
            bound = min(bounds) if bounds else None
            candidates = sorted({i for ids in sources for i in ids if bound is None or i <= bound})
            resolved = self.resolve(q.tenant_id, [UUID(i) for i in candidates], now)
            matching = (f for f in resolved if q.matches(f.session))
            yield from sorted(matching, key=lambda f: str(f.session.id))
            if bound is None:
                return
            after = bound

    def _index_ids(self, index: str, after: str | None, batch: int) -> list[str]:
        found = self.client.zrangebylex(
            index, f"({after}" if after else "-", "+", start=0, num=batch
        )
        return [text(i) for i in found]

    def resolve(self, tenant: UUID, ids: list[UUID], now: datetime) -> list[Found]:
        """The current, unexpired version of each session: the Redis copy if there is one,
        else the row, read only after Redis answered (a row read earlier may be stale)."""
        base = keys.base(tenant)
        out: list[Found] = []
        missing: list[UUID] = []
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            names = [str(sid) for sid in chunk]
            reply = scripts.run(
                self.client, self.scripts["fetch"], keys.batch_keys(base, names), names
            )
            for i, sid in enumerate(chunk):
                tier, payload, incarnation = reply[3 * i : 3 * i + 3]
                data: bytes | str
                if tier == b"h":
                    data = payload
                elif tier == b"c":
                    data = self.cold_tier.unpack(payload)
                else:
                    missing.append(sid)
                    continue
                self._found(out, data, text(incarnation), now)
        if missing:
            for row in self.cold_tier.locate_many(tenant, missing).values():
                self._found(out, row.data, row.incarnation, now)
        return out

    def _found(self, out: list[Found], data: bytes | str, incarnation: str, now: datetime) -> None:
        session = self.live(codec.decode(data), now)
        if session is not None:
            out.append(Found(session, incarnation))

    def save_args(
        self, stored: Session, data: bytes, expected: str, now: datetime, **rest: Any
    ) -> scripts.SaveArgs:
        """save.lua's arguments for writing ``stored`` (encoded as ``data``) over the state
        ``expected``; ``rest`` names the call's own (see :class:`scripts.SaveArgs`)."""
        return scripts.SaveArgs(
            session_id=str(stored.id),
            expected=expected,
            document=data,
            version=stored.version,
            created_us=keys.micros(stored.created_at),
            cutoff_us=keys.micros(now - self.max_age),
            index_suffixes=keys.index_suffixes(stored),
            **rest,
        )

    def run(
        self,
        name: str,
        tenant: UUID,
        sid: UUID,
        args: list[Any],
        *,
        hint: tuple[int, int] | None = None,
    ) -> Any:
        """Run a per-session script. ``hint`` = (idle_us, created_us) of a session that may
        enter the tenant's sorted sets: the tenant is also registered, and the sweeps' hints
        lowered to those times (see :meth:`register`)."""
        script_keys = keys.session_keys(keys.base(tenant), sid)
        script = self.scripts[name]
        if hint is None:
            return scripts.run(self.client, script, script_keys, args)
        # The registry and the hints have their own slots, so they cannot be in the
        # script. They are written before the script, so no session exists unregistered
        # even if the client dies in between, and again after it, so that a sweep that
        # found the tenant empty just before and is taking it off cannot leave it off
        # (see TenantHints.prune and refresh).
        if self.cluster:
            # A cluster pipeline sends each node its share at once, in no set order
            # between nodes: the three steps go one after the other. The registry
            # bucket may be on a master that is down while the tenant's is not: the
            # write goes ahead, and the reconcile finds the tenant by its keys.
            self.hint_quietly(tenant, *hint)
            reply = scripts.run(self.client, script, script_keys, args)
            self.hint_quietly(tenant, *hint)
            return reply
        # On one Redis the pipeline keeps the order, and the three are one round trip.
        pipe = self.client.pipeline(transaction=False)
        self.register(pipe, tenant, *hint)
        pipe.execute_command(*scripts.evalsha_command(script, script_keys, args))
        self.register(pipe, tenant, *hint)
        replies = pipe.execute(raise_on_error=False)
        reply = replies[3]
        if isinstance(reply, NoScriptError):
            reply = scripts.run(self.client, script, script_keys, args)
            after = self.client.pipeline(transaction=False)
            self.register(after, tenant, *hint)
            replies = [*after.execute(raise_on_error=False), reply]
        for result in replies:
            if isinstance(result, Exception):
                raise result
        return reply

    @staticmethod
    def register(pipe: Any, tenant: UUID, idle_us: int, created_us: int) -> None:
        """Queue the registration of ``tenant`` and lower its hints to the given times
        (``LT``: a hint only ever moves earlier here; a sweep moves it later)."""
        bucket, member = keys.bucket_of(tenant), str(tenant)
        pipe.sadd(keys.registry(bucket), member)
        pipe.zadd(keys.due_idle(bucket), {member: idle_us}, lt=True)
        pipe.zadd(keys.due_created(bucket), {member: created_us}, lt=True)

    def hint(self, tenant: UUID, idle_us: int, created_us: int) -> None:
        """Register ``tenant`` and lower its hints after a script reported that a session
        entered its sorted sets."""
        if self.cluster:
            self.hint_quietly(tenant, idle_us, created_us)
            return
        self._hint_now(tenant, idle_us, created_us)

    def hint_quietly(self, tenant: UUID, idle_us: int, created_us: int) -> None:
        """:meth:`_hint_now`, but a registry bucket that cannot be reached is only logged
        (on a cluster; see :meth:`TenantHints.reconcile_if_due` for the repair)."""
        try:
            # Translated here: an unavailable bucket is told apart, and only logged.
            with redis_translated():
                self._hint_now(tenant, idle_us, created_us)
        except StoreUnavailableError as exc:
            _log.warning("tenant %s not registered for the sweeps yet: %s", tenant, exc)

    def _hint_now(self, tenant: UUID, idle_us: int, created_us: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        self.register(pipe, tenant, idle_us, created_us)
        pipe.execute()

    def live(self, session: Session, now: datetime) -> Session | None:
        """The session, or None if it expired by ``now``."""
        return None if codec.is_expired(session.created_at, now, self.max_age) else session

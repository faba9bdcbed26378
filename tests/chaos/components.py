"""The processes of a chaos run: writers, demoters, the purger and its feeder of expired
sessions. Each publishes its counts to shared memory as it goes: a demoter may be killed."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from stores.errors import StoreError, StoreUnavailableError
from stores.sessions import Session, Shard
from tests.chaos.checker import Writer
from tests.chaos.common import (
    CHANNEL,
    ChaosConfig,
    Shared,
    SharedClock,
    WriterSpec,
)
from tests.chaos.servers import fence_refusals, open_store


def writer_process(cfg: ChaosConfig, shared: Shared, specs: list[WriterSpec]) -> None:
    """A process of writers: one store, one thread per writer; sends the writers back."""
    row = specs[0].row
    clock = SharedClock(shared.clock)
    writers = [
        Writer(
            spec,
            cfg.samples,
            clock=clock,
            race=cfg.race,
            hot_ttl=cfg.hot_ttl,
            race_window=cfg.tick * cfg.race_ticks,
            socket_timeout=cfg.socket_timeout,
        )
        for spec in specs
    ]
    try:
        store = open_store(cfg, clock, pool_size=len(specs) + 1)
    except Exception:
        shared.record_error(row, "writer")
        shared.results.put(("writers", row, []))
        return
    for writer in writers:
        writer.fault_at = shared.fault_at
        writer.redis_outage = shared.redis_outage
    shared.put(row, "ready", 1)
    shared.go.wait()
    threads = [
        threading.Thread(target=w.run, args=(store, shared.stop, shared), daemon=True)
        for w in writers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shared.put(row, "fence_refusals", fence_refusals(store))
    with contextlib.suppress(Exception):
        store.close()
    shared.results.put(("writers", row, writers))


SWEEP_SHARDS: tuple[Shard | None, ...] = (None, None, *Shard.split(2), *Shard.split(4))
"""What a demoter's or the purger's call sweeps: everything, or one shard of a split in two
or in four, so that whole and sharded sweeps of different splits overlap."""


def demote_loop(store: Any, shared: Shared, row: int, limits: tuple[int, ...]) -> None:
    """Demote in small batches until stopped, publishing counts after every call."""
    rng = random.Random(row)
    while not shared.stop.is_set():
        shared.put(row, "busy", 1)
        try:
            moved = store.demote_idle(limit=rng.choice(limits), shard=rng.choice(SWEEP_SHARDS))
        except StoreUnavailableError:
            moved = -1
        except StoreError:
            shared.record_error(row, "demoter")
            moved = -1
        finally:
            shared.put(row, "busy", 0)
        shared.bump(row, "ops")
        if moved < 0:
            shared.bump(row, "unavailable")
            time.sleep(0.05)
            continue
        shared.bump(row, "moves", moved)
        shared.put(row, "fence_refusals", fence_refusals(store))
        time.sleep(0.001 if moved else rng.uniform(0.005, 0.02))


def demoter_process(cfg: ChaosConfig, shared: Shared, row: int) -> None:
    """A demoter of its own (killed with SIGKILL by the fault injector now and then)."""
    try:
        store = open_store(cfg, SharedClock(shared.clock), pool_size=2)
        shared.put(row, "ready", 1)
        shared.go.wait()
        demote_loop(store, shared, row, cfg.demote_limits)
        store.close()
    except Exception:
        shared.record_error(row, "demoter")


def purger_process(cfg: ChaosConfig, shared: Shared, row: int, tenant: UUID) -> None:
    """The purger, and a feeder of sessions that are expired from the moment they exist."""
    feeder_row = row + 1
    try:
        purger = open_store(cfg, SharedClock(shared.clock), pool_size=2)
        # created_at comes from the store's clock: one running max_age + a day behind
        # creates sessions every other store sees as expired.
        ancient = open_store(
            cfg,
            SharedClock(shared.clock, -(cfg.max_age + timedelta(days=1))),
            pool_size=2,
        )
        checker = open_store(cfg, SharedClock(shared.clock), pool_size=2)
    except Exception:
        shared.record_error(row, "purger")
        shared.results.put(("purger", row, {}))
        return
    feed = Feeder(tenant)
    shared.put(row, "ready", 1)
    shared.put(feeder_row, "ready", 1)
    shared.go.wait()
    thread = threading.Thread(target=feed.run, args=(ancient, checker, shared, feeder_row))
    thread.start()
    rng = random.Random(row)
    try:
        while not shared.stop.is_set():
            try:
                removed = purger.purge_expired(
                    limit=rng.choice((1, 5, 20, 100)), shard=rng.choice(SWEEP_SHARDS)
                )
            except StoreUnavailableError:
                shared.bump(row, "unavailable")
                time.sleep(0.05)
                continue
            except StoreError:
                shared.record_error(row, "purger")
                time.sleep(0.05)
                continue
            shared.bump(row, "ops")
            shared.bump(row, "purged", removed)
            shared.put(row, "fence_refusals", fence_refusals(purger))
            time.sleep(rng.uniform(0.005, 0.03))
    except Exception:
        shared.record_error(row, "purger")
    thread.join()
    shared.put(feeder_row, "fence_refusals", fence_refusals(ancient) + fence_refusals(checker))
    for store in (purger, ancient, checker):
        with contextlib.suppress(Exception):
            store.close()
    shared.results.put(("purger", row, feed.report()))


class Feeder:
    """Creates expired sessions for the purger and checks that no read returns them."""

    def __init__(self, tenant: UUID) -> None:
        self.tenant = tenant
        self.agent = uuid4()
        self.ids: list[UUID] = []
        self.served: Counter[str] = Counter()
        self.samples: list[str] = []

    def run(self, ancient: Any, checker: Any, shared: Shared, row: int) -> None:
        """Feed and check until stopped."""
        rng = random.Random(row)
        while not shared.stop.is_set():
            try:
                self.feed_once(ancient, checker, rng)
                shared.bump(row, "ops", 2)
            except StoreUnavailableError:
                shared.bump(row, "unavailable")
                time.sleep(0.05)
            except StoreError:
                shared.record_error(row, "feeder")
                time.sleep(0.05)
            except Exception:
                shared.record_error(row, "feeder")
                return
            time.sleep(rng.uniform(0.01, 0.04))

    def feed_once(self, ancient: Any, checker: Any, rng: random.Random) -> None:
        """Create one expired session, then read an earlier one through a live clock."""
        n = len(self.ids)
        session = Session(
            tenant_id=self.tenant,
            agent_id=self.agent,
            channel=CHANNEL,
            user_channel_id=f"expired-{n}",
            variables={"expired": n},
        )
        # Known before the save: one that raised may have landed all the same.
        self.ids.append(session.id)
        ancient.save(session)
        sid = rng.choice(self.ids[-50:])
        if checker.get(self.tenant, sid) is not None:
            self.serve("get", sid)
        if checker.tier_of(self.tenant, sid) is not None:
            self.serve("tier_of", sid)
        if n % 10 == 0:
            if checker.get_by_channel(self.tenant, CHANNEL, f"expired-{n}") is not None:
                self.serve("get_by_channel", sid)
            if checker.list_by_agent(self.tenant, self.agent, limit=5).items:
                self.serve("list_by_agent", sid)

    def serve(self, path: str, sid: UUID) -> None:
        """An expired session came back from a read."""
        self.served[path] += 1
        if len(self.samples) < 10:
            self.samples.append(f"{path} {sid}")

    def report(self) -> dict[str, Any]:
        """What the feeder saw, for the run's report."""
        return {
            "ids": [str(i) for i in self.ids],
            "served": dict(self.served),
            "samples": self.samples,
        }

"""1,000 concurrent operations on overlapping sessions: no error but ConflictError, no lost
update, while a sweeper keeps demoting the same sessions and reads keep promoting them."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from stores.common.clock import ManualClock
from stores.errors import ConflictError
from stores.sessions import Session, SessionStore
from tests.cluster_support import redis_cluster_nodes, redis_cluster_url  # noqa: F401
from tests.sessions_support import MAX_AGE, REDIS_BACKENDS, build_store, module_database

THREADS = 16
OPS_PER_THREAD = 64
SESSIONS = 16


@pytest.fixture(scope="module")
def sessions_database(pg_server: str, pg_template: str) -> Iterator[str]:
    """One database for this module's PostgreSQL cold tier."""
    with module_database(pg_server, pg_template) as url:
        yield url


@pytest.mark.redis
@pytest.mark.parametrize("backend", REDIS_BACKENDS)
def test_concurrent_increments_either_land_or_conflict(
    backend: str, request: pytest.FixtureRequest, clock: ManualClock
) -> None:
    # A connection per thread: waiting for the pool is not what this test measures.
    with build_store(backend, request, clock, pool_size=THREADS + 2) as store:
        tenant, agent = uuid4(), uuid4()
        ids = [
            store.save(
                Session(
                    tenant_id=tenant,
                    agent_id=agent,
                    channel="web",
                    user_channel_id=f"u{i}",
                    variables={"n": 0},
                )
            ).id
            for i in range(SESSIONS)
        ]
        landed: Counter[UUID] = Counter()
        outcomes: Counter[str] = Counter()
        unexpected: list[BaseException] = []
        lock = threading.Lock()
        done = threading.Event()

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(OPS_PER_THREAD):
                sid = rng.choice(ids)
                try:
                    if rng.random() < 0.15:
                        listed = [s.id for s in store.list_by_agent(tenant, agent).items]
                        # Every live session, each once, even while it moves between
                        # tiers under the listing.
                        assert sorted(listed) == sorted(ids)
                        with lock:
                            outcomes["list"] += 1
                        continue
                    session = store.get(tenant, sid)
                    assert session is not None
                    session.variables["n"] += 1
                    store.save(session)
                    with lock:
                        landed[sid] += 1
                        outcomes["landed"] += 1
                except ConflictError:
                    with lock:
                        outcomes["conflict"] += 1
                except BaseException as exc:
                    with lock:
                        unexpected.append(exc)

        def sweeper() -> None:
            # Idle sessions keep going cold under the workers' feet; their reads bring
            # them back: every tier move races the saves.
            # However many sweeps a slow machine fits in, the sessions must not expire.
            last_step = clock() + MAX_AGE - timedelta(hours=1)
            while not done.is_set():
                if clock() < last_step:
                    clock.advance(minutes=31)
                try:
                    moved = store.demote_idle()
                except BaseException as exc:
                    with lock:
                        unexpected.append(exc)
                    return
                with lock:
                    outcomes["demoted"] += moved
                    outcomes["sweeps"] += 1
            # A last sweep once the load stopped, so that the end state went through at
            # least one demotion whatever the interleaving was.
            clock.advance(minutes=31)
            with lock:
                outcomes["demoted"] += store.demote_idle()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        sweep = threading.Thread(target=sweeper)
        sweep.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        sweep.join()

        assert unexpected == []
        ops = outcomes["landed"] + outcomes["conflict"] + outcomes["list"]
        assert ops == THREADS * OPS_PER_THREAD >= 1000
        assert outcomes["landed"] > 0
        assert outcomes["conflict"] > 0
        assert outcomes["demoted"] > 0
        for sid in ids:
            final = store.get(tenant, sid)
            assert final is not None
            assert final.variables["n"] == landed[sid]
            assert final.version == 1 + landed[sid]
        check_no_duplicates(store, tenant, agent, ids)


def check_no_duplicates(store: SessionStore, tenant: UUID, agent: UUID, ids: list[UUID]) -> None:
    """After all the tier moves, every index still lists each session exactly once."""
    page = store.list_by_agent(tenant, agent, limit=100)
    assert sorted(s.id for s in page.items) == sorted(ids)

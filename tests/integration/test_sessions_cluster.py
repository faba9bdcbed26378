"""The Redis session store on a Redis Cluster whose nodes fail and whose slots move.

A master that is down fails its own tenants, quickly, and no one else's; once it is back
(empty: nothing is persisted) everything works again, and the sessions it lost are exactly
those that were only in its memory. A slot that moves between masters while its tenant is
being written loses nothing. Each test runs a cluster of its own.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
import redis
from redis.cluster import key_slot

from stores.common.clock import ManualClock
from stores.errors import ConflictError, StoreUnavailableError
from stores.sessions import Session, Tier, keys
from stores.sessions.redis import RedisSessionStore
from stores.sessions.redis_hints import RECONCILE_EVERY
from tests.cluster_support import ClusterNodes, own_redis_cluster  # noqa: F401
from tests.sessions_support import HOT_TTL, MAX_AGE, empty_sessions_table, module_database

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

CALL_BOUND = 10.0
"""Seconds a call may take against a master that is down: socket timeout plus retries."""


@pytest.fixture(scope="module")
def sessions_database(pg_server: str, pg_template: str) -> Iterator[str]:
    """One database for this module's PostgreSQL cold tier."""
    with module_database(pg_server, pg_template) as url:
        yield url


def open_store(
    nodes: ClusterNodes, cold: str, request: pytest.FixtureRequest, clock: ManualClock
) -> RedisSessionStore:
    options: dict[str, Any] = {}
    if cold == "postgres":
        database_url = request.getfixturevalue("sessions_database")
        empty_sessions_table(database_url)
        options["database_url"] = database_url
    return RedisSessionStore.from_url(
        nodes.url,
        cold_tier=cold,  # type: ignore[arg-type]
        hot_ttl=HOT_TTL,
        max_age=MAX_AGE,
        clock=clock,
        socket_timeout=1.0,
        **options,
    )


def make(tenant: UUID, **fields: Any) -> Session:
    return Session(
        tenant_id=tenant,
        agent_id=uuid4(),
        channel="web",
        user_channel_id=f"u-{uuid4().hex[:6]}",
        **fields,
    )


def slot_of(tenant: UUID) -> int:
    return int(key_slot(keys.idle(keys.base(tenant)).encode()))


def tenants_by_master(nodes: ClusterNodes, per_master: int) -> dict[int, list[UUID]]:
    """``per_master`` tenants whose keys each master serves."""
    found: dict[int, list[UUID]] = {port: [] for port in nodes.ports}
    while any(len(t) < per_master for t in found.values()):
        tenant = uuid4()
        owner = found[nodes.owner(slot_of(tenant))]
        if len(owner) < per_master:
            owner.append(tenant)
    return found


def bounded(call: Any) -> BaseException:
    """Run ``call``, which must fail; the error, once checked it came within CALL_BOUND."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        call()
    assert time.monotonic() - started < CALL_BOUND
    return caught.value


@pytest.mark.parametrize("cold", ["redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_master_down_fails_its_tenants_only_and_rejoins_empty(
    own_redis_cluster: ClusterNodes,  # noqa: F811
    cold: str,
    request: pytest.FixtureRequest,
    clock: ManualClock,
) -> None:
    nodes = own_redis_cluster
    store = open_store(nodes, cold, request, clock)
    try:
        by_master = tenants_by_master(nodes, per_master=3)
        victim = nodes.ports[0]
        everyone = [t for tenants in by_master.values() for t in tenants]
        demoted = {t: store.save(make(t)) for t in everyone}
        clock.advance(seconds=HOT_TTL.total_seconds())
        assert store.demote_idle() == len(everyone)
        hot = {t: store.save(make(t)) for t in everyone}

        nodes.kill(victim)
        for tenant in by_master[victim]:
            bounded(lambda t=tenant: store.save(make(t)))
            bounded(lambda t=tenant: store.get(t, hot[t].id))
            bounded(lambda t=tenant: store.get(t, demoted[t].id))
        others = [t for port, tenants in by_master.items() if port != victim for t in tenants]
        for tenant in others:
            assert store.get(tenant, hot[tenant].id) == hot[tenant]
            promoted = store.get(tenant, demoted[tenant].id)  # cold -> hot
            assert promoted is not None
            assert promoted.id == demoted[tenant].id
            updated = store.save(promoted.model_copy(update={"variables": {"k": 1}}))
            assert updated.version == 2
            assert store.save(make(tenant)).version == 1
        # The sweep demotes every idle session it can reach: those of the other masters'
        # tenants, unless the tenant's registry bucket was on the master that is down.
        clock.advance(seconds=HOT_TTL.total_seconds())
        store.demote_idle()
        reachable = [t for t in others if nodes.owner(registry_slot(t)) != victim]
        assert reachable
        for tenant in reachable:
            assert store.tier_of(tenant, hot[tenant].id) is Tier.COLD

        nodes.start(victim)  # the same port and nodes.conf: it takes its slots back, empty
        nodes.wait_ok()
        for tenant in by_master[victim]:
            # What was only in the lost master's memory is gone; a demoted session is
            # still in PostgreSQL, and in nothing else with the Redis cold tier.
            assert store.get(tenant, hot[tenant].id) is None
            back = store.get(tenant, demoted[tenant].id)
            assert (back == demoted[tenant]) if cold == "postgres" else (back is None)
            assert store.save(make(tenant)).version == 1
        for tenant in others:
            assert store.get(tenant, hot[tenant].id) == hot[tenant]
            current = store.get(tenant, demoted[tenant].id)
            assert current is not None
            assert current.version == 2

        # Every registry bucket the lost master held is gone: the reconcile finds the
        # tenants by their keys, so every idle session is demoted again.
        clock.advance(seconds=RECONCILE_EVERY.total_seconds() + HOT_TTL.total_seconds())
        store.demote_idle()
        for tenant in everyone:
            assert store.count_idle() == 0
            assert store.tier_of(tenant, hot[tenant].id) in (
                (Tier.COLD,) if tenant in others else (None,)
            )
    finally:
        store.close()


def registry_slot(tenant: UUID) -> int:
    return int(key_slot(keys.registry(keys.bucket_of(tenant)).encode()))


def _node_ids(nodes: ClusterNodes) -> dict[int, str]:
    client = nodes.client(nodes.ports[0])
    try:
        found: dict[int, str] = {}
        for address, node in client.execute_command("CLUSTER NODES").items():  # type: ignore[no-untyped-call]
            found[int(address.split(":")[1].split("@")[0])] = node["node_id"]
        return found
    finally:
        client.close()


def move_slot(nodes: ClusterNodes, slot: int, target: int, between: Any) -> int:
    """Move ``slot`` to master ``target`` the way ``redis-cli --cluster reshard`` does,
    a few keys per MIGRATE, calling ``between()`` after each step; how many keys moved."""
    source = nodes.owner(slot)
    ids = _node_ids(nodes)
    to, frm = nodes.client(target), nodes.client(source)
    moved = 0
    try:
        to.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source])  # type: ignore[no-untyped-call]
        frm.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target])  # type: ignore[no-untyped-call]
        between()
        while True:
            names = frm.execute_command("CLUSTER GETKEYSINSLOT", slot, 3)  # type: ignore[no-untyped-call]
            if not names:
                break
            frm.execute_command(  # type: ignore[no-untyped-call]
                "MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *names
            )
            moved += len(names)
            between()
        for port in nodes.ports:
            client = nodes.client(port)
            try:
                client.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target])  # type: ignore[no-untyped-call]
            finally:
                client.close()
    finally:
        to.close()
        frm.close()
    return moved


@pytest.mark.parametrize("cold", ["redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_slot_moving_between_masters_loses_nothing(
    own_redis_cluster: ClusterNodes,  # noqa: F811
    cold: str,
    request: pytest.FixtureRequest,
    clock: ManualClock,
) -> None:
    nodes = own_redis_cluster
    store = open_store(nodes, cold, request, clock)
    try:
        tenant = uuid4()
        sessions = [store.save(make(tenant, variables={"n": 0})) for _ in range(8)]
        clock.advance(seconds=HOT_TTL.total_seconds())
        assert store.demote_idle() == 8
        # Half hot again, half cold: the writer promotes and updates both kinds.
        for s in sessions[:4]:
            assert store.get(tenant, s.id) is not None
        landed: Counter[UUID] = Counter()
        outcomes: Counter[str] = Counter()
        unexpected: list[BaseException] = []
        stop = threading.Event()
        done = threading.Semaphore(0)

        def writer() -> None:
            i = 0
            while not stop.is_set():
                sid = sessions[i % len(sessions)].id
                i += 1
                try:
                    current = store.get(tenant, sid)
                    assert current is not None
                    n = int(current.variables["n"])
                    store.save(current.model_copy(update={"variables": {"n": n + 1}}))
                    landed[sid] += 1
                    outcomes["ok"] += 1
                except ConflictError:
                    outcomes["conflict"] += 1
                except StoreUnavailableError:
                    # A script whose keys a reshard has split between two nodes is refused
                    # (TRYAGAIN) until the move of that batch of keys is done.
                    outcomes["unavailable"] += 1
                except BaseException as exc:
                    unexpected.append(exc)
                    return
                finally:
                    done.release()

        def between() -> None:
            # The writer finishes an operation or two at each step of the move.
            for _ in range(2):
                assert done.acquire(timeout=30)

        slot = slot_of(tenant)
        target = next(p for p in nodes.ports if p != nodes.owner(slot))
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            moved = move_slot(nodes, slot, target, between)
            between()
        finally:
            stop.set()
            thread.join(timeout=60)
        assert unexpected == []
        assert moved > 8  # the sessions' hashes, the sorted sets, the indexes
        assert nodes.owner(slot) == target
        assert outcomes["ok"] > 0
        for s in sessions:
            current = store.get(tenant, s.id)
            assert current is not None
            assert current.variables["n"] == landed[s.id]  # no update lost
            assert current.version == 1 + landed[s.id]
        clock.advance(seconds=HOT_TTL.total_seconds())
        assert store.demote_idle() == 8
        assert [store.tier_of(tenant, s.id) for s in sessions] == [Tier.COLD] * 8
    finally:
        store.close()


def test_redis_cluster_url_names_every_node(own_redis_cluster: ClusterNodes) -> None:  # noqa: F811
    store = RedisSessionStore.from_url(own_redis_cluster.url, cold_tier="redis")
    try:
        assert isinstance(store.client, redis.RedisCluster)
        named = {node.port for node in store.client.get_primaries()}  # type: ignore[no-untyped-call]
        assert named == set(own_redis_cluster.ports)
    finally:
        store.close()

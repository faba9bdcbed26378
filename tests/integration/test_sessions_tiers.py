"""Tier moves of the Redis session store, step by step: interrupted demotions and
promotions lose nothing, deletes win races, Redis memory is freed, keys stay in one slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from redis.cluster import key_slot

from stores.common.clock import ManualClock
from stores.errors import StoreUnavailableError
from stores.sessions import Session, SessionStore, Tier
from stores.sessions.cold_postgres import PostgresColdTier
from stores.sessions.coldtier import Claim
from stores.sessions.redis import RedisSessionStore
from tests.cluster_support import redis_cluster_nodes, redis_cluster_url  # noqa: F401
from tests.sessions_support import HOT_TTL, MAX_AGE, REDIS_BACKENDS, build_store, module_database

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def sessions_database(pg_server: str, pg_template: str) -> Iterator[str]:
    """One database for this module's PostgreSQL cold tier."""
    with module_database(pg_server, pg_template) as url:
        yield url


@pytest.fixture(params=["redis", pytest.param("cluster", marks=pytest.mark.cluster)])
def hot(request: pytest.FixtureRequest) -> str:
    """Where the hot tier runs: one Redis, or a Redis Cluster."""
    return str(request.param)


@pytest.fixture
def hot_url(hot: str, request: pytest.FixtureRequest) -> str:
    """The URL of this test's (emptied) Redis or Redis Cluster."""
    return str(request.getfixturevalue("redis_cluster_url" if hot == "cluster" else "redis_url"))


@pytest.fixture
def pg_store(
    hot: str, request: pytest.FixtureRequest, clock: ManualClock
) -> Iterator[RedisSessionStore]:
    with build_store(f"{hot}-postgres-cold", request, clock) as store:
        assert isinstance(store, RedisSessionStore)
        yield store


@pytest.fixture
def redis_store(
    hot: str, request: pytest.FixtureRequest, clock: ManualClock
) -> Iterator[RedisSessionStore]:
    with build_store(f"{hot}-redis-cold", request, clock) as store:
        assert isinstance(store, RedisSessionStore)
        yield store


def make(tenant: UUID, agent: UUID | None = None, **fields: Any) -> Session:
    return Session(
        tenant_id=tenant,
        agent_id=agent or uuid4(),
        channel="web",
        user_channel_id=f"u-{uuid4().hex[:6]}",
        **fields,
    )


def cold_rows(store: RedisSessionStore, state: str = "cold") -> list[tuple[UUID, int]]:
    """The (id, version) of the rows in ``state``: cold copies unless told otherwise."""
    tier = store.cold_tier
    assert isinstance(tier, PostgresColdTier)
    with tier.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, version FROM sessions WHERE state = :state"), {"state": state}
        )
        return [(r.id, r.version) for r in rows]


def fail_at(step: str) -> Any:
    """A step hook that loses the connection at ``step``."""

    def hook(name: str) -> None:
        if name == step:
            raise StoreUnavailableError("connection lost (simulated)")

    return hook


def tenant_keys(store: RedisSessionStore, tenant: UUID) -> list[bytes]:
    return list(store.client.scan_iter(match=f"hearth:s:{{{tenant}}}:*", count=1000))


@pytest.mark.postgres
def test_demotion_interrupted_after_the_copy_loses_nothing(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant, agent = uuid4(), uuid4()
    stored = pg_store.save(make(tenant, agent, variables={"v": 1}))
    clock.advance(seconds=HOT_TTL.total_seconds())
    pg_store.step_hook = fail_at("demote:copied")
    with pytest.raises(StoreUnavailableError):
        pg_store.demote_idle()
    pg_store.step_hook = None
    assert cold_rows(pg_store) == [(stored.id, 1)]  # the copy was written...
    assert pg_store.tier_of(tenant, stored.id) is Tier.HOT  # ...the hot one is still the truth
    assert pg_store.get(tenant, stored.id) == stored

    stored.variables["v"] = 2
    newer = pg_store.save(stored)
    assert [s.id for s in pg_store.list_by_agent(tenant, agent).items] == [stored.id]
    assert pg_store.list_by_agent(tenant, agent).items[0] == newer

    clock.advance(seconds=HOT_TTL.total_seconds())
    assert pg_store.demote_idle() == 1
    assert cold_rows(pg_store) == [(stored.id, 2)]
    assert pg_store.get(tenant, stored.id) == newer


@pytest.mark.postgres
def test_demotion_failing_to_write_the_copy_leaves_the_session_hot(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant = uuid4()
    stored = pg_store.save(make(tenant))
    clock.advance(seconds=HOT_TTL.total_seconds())
    tier = pg_store.cold_tier
    assert isinstance(tier, PostgresColdTier)

    def broken_put(*_: Any) -> None:
        raise StoreUnavailableError("database unavailable (simulated)")

    tier.put = broken_put  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailableError):
        pg_store.demote_idle()
    del tier.put
    assert cold_rows(pg_store) == []
    assert pg_store.tier_of(tenant, stored.id) is Tier.HOT
    assert pg_store.demote_idle() == 1
    assert pg_store.get(tenant, stored.id) == stored


@pytest.mark.postgres
def test_a_copy_left_stale_by_a_raced_demotion_is_never_served(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant, agent = uuid4(), uuid4()
    stored = pg_store.save(make(tenant, agent))
    clock.advance(seconds=HOT_TTL.total_seconds())

    def save_between_copy_and_evict(step: str) -> None:
        if step == "demote:copied":
            pg_store.step_hook = None
            pg_store.save(stored)  # a save lands between the copy and the eviction

    pg_store.step_hook = save_between_copy_and_evict
    assert pg_store.demote_idle() == 0
    assert pg_store.fence_refusals == 1
    assert cold_rows(pg_store) == [(stored.id, 1)]  # stale, but the hot copy is the truth
    current = pg_store.get(tenant, stored.id)
    assert current is not None
    assert current.version == 2
    assert pg_store.tier_of(tenant, stored.id) is Tier.HOT
    assert pg_store.list_by_agent(tenant, agent).items == [current]
    # The next demotion writes over the stale copy.
    clock.advance(seconds=HOT_TTL.total_seconds())
    assert pg_store.demote_idle() == 1
    assert cold_rows(pg_store) == [(stored.id, 2)]
    assert pg_store.get(tenant, stored.id) == current


@pytest.mark.postgres
def test_a_delete_racing_a_demotion_wins(pg_store: RedisSessionStore, clock: ManualClock) -> None:
    tenant, agent = uuid4(), uuid4()
    stored = pg_store.save(make(tenant, agent))
    clock.advance(seconds=HOT_TTL.total_seconds())

    def delete_after_the_read(step: str) -> None:
        if step == "demote:read":
            pg_store.step_hook = None
            assert pg_store.delete(tenant, stored.id)  # deleted after the sweep read it

    pg_store.step_hook = delete_after_the_read
    assert pg_store.demote_idle() == 0
    assert cold_rows(pg_store) == []
    assert cold_rows(pg_store, "deleted") == [(stored.id, 1)]
    assert pg_store.get(tenant, stored.id) is None
    assert pg_store.tier_of(tenant, stored.id) is None
    assert pg_store.list_by_agent(tenant, agent).items == []


@pytest.mark.postgres
def test_a_demotion_landing_between_the_steps_of_a_delete_is_refused(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant, agent = uuid4(), uuid4()
    stored = pg_store.save(make(tenant, agent))
    clock.advance(seconds=HOT_TTL.total_seconds())
    demoted: list[int] = []

    def demote_between_mark_and_redis(step: str) -> None:
        if step == "delete:marked":
            pg_store.step_hook = None
            # A sweep reads the hot copy the delete has not reached yet.
            demoted.append(pg_store.demote_idle())

    pg_store.step_hook = demote_between_mark_and_redis
    assert pg_store.delete(tenant, stored.id) is True
    assert demoted == [0]
    assert cold_rows(pg_store) == []
    assert pg_store.list_by_agent(tenant, agent).items == []
    assert pg_store.get(tenant, stored.id) is None
    assert pg_store.tier_of(tenant, stored.id) is None


@pytest.mark.postgres
def test_promotion_interrupted_before_its_commit_loses_nothing(
    pg_store: RedisSessionStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, agent = uuid4(), uuid4()
    stored = pg_store.save(make(tenant, agent))
    clock.advance(seconds=HOT_TTL.total_seconds())
    assert pg_store.demote_idle() == 1

    def broken_keep(*_: Any) -> None:
        raise StoreUnavailableError("database unavailable (simulated)")

    with monkeypatch.context() as patch:
        patch.setattr(Claim, "keep", broken_keep)
        with pytest.raises(StoreUnavailableError):
            pg_store.get(tenant, stored.id)
    # The hot copy was written, the row's change rolled back: both hold the session.
    assert pg_store.tier_of(tenant, stored.id) is Tier.HOT
    assert cold_rows(pg_store) == [(stored.id, 1)]
    assert pg_store.get(tenant, stored.id) == stored
    assert [s.id for s in pg_store.list_by_agent(tenant, agent).items] == [stored.id]
    stored.variables["after"] = True
    newer = pg_store.save(stored)
    assert pg_store.list_by_agent(tenant, agent).items == [newer]
    clock.advance(seconds=HOT_TTL.total_seconds())
    assert pg_store.demote_idle() == 1
    assert cold_rows(pg_store) == [(stored.id, 2)]
    assert pg_store.get(tenant, stored.id) == newer


@pytest.mark.postgres
def test_a_demotion_during_a_promotion_waits_for_it(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    # The promoted copy goes straight back down while the promotion still holds the row.
    tenant = uuid4()
    stored = pg_store.save(make(tenant))
    clock.advance(seconds=HOT_TTL.total_seconds())
    assert pg_store.demote_idle() == 1
    tier = pg_store.cold_tier
    assert isinstance(tier, PostgresColdTier)
    demoted: list[int] = []
    sweep = threading.Thread(target=lambda: demoted.append(pg_store.demote_idle()))

    def demote_before_the_commit(step: str) -> None:
        if step == "promote:written":
            pg_store.step_hook = None
            clock.advance(seconds=HOT_TTL.total_seconds())
            sweep.start()
            with tier.engine.connect() as conn:
                wait_for_a_lock_wait(conn)

    pg_store.step_hook = demote_before_the_commit
    assert pg_store.get(tenant, stored.id) == stored
    sweep.join()
    assert demoted == [1]
    assert pg_store.tier_of(tenant, stored.id) is Tier.COLD
    assert cold_rows(pg_store) == [(stored.id, 1)]
    assert pg_store.get(tenant, stored.id) == stored


def wait_for_a_lock_wait(conn: sa.Connection) -> None:
    """Return once another backend waits for a lock."""
    for _ in range(500):
        # Activity is snapshotted per transaction: drop the snapshot to see changes.
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        waiting = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() "
                "AND datname = current_database()"
            )
        ).scalar()
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the demotion never waited for the promotion's lock")


def test_redis_demotion_interrupted_before_the_move_loses_nothing(
    redis_store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant = uuid4()
    stored = redis_store.save(make(tenant))
    clock.advance(seconds=HOT_TTL.total_seconds())
    redis_store.step_hook = fail_at("demote:read")
    with pytest.raises(StoreUnavailableError):
        redis_store.demote_idle()
    redis_store.step_hook = None
    assert redis_store.tier_of(tenant, stored.id) is Tier.HOT
    assert redis_store.demote_idle() == 1
    assert redis_store.tier_of(tenant, stored.id) is Tier.COLD
    assert redis_store.get(tenant, stored.id) == stored


@pytest.mark.postgres
def test_the_postgres_cold_tier_frees_redis_memory(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant, agent = uuid4(), uuid4()
    for i in range(200):
        pg_store.save(
            make(
                tenant,
                agent,
                customer_profile_id=uuid4(),
                variables={"notes": f"{i} " + "lorem ipsum " * 150},
            )
        )
    hot = pg_store.stats()
    assert hot.hot_sessions == 200
    assert hot.hot_bytes > 200 * 1500
    used = sum(pg_store.client.memory_usage(k) or 0 for k in tenant_keys(pg_store, tenant))
    assert used > 200 * 1500

    clock.advance(seconds=HOT_TTL.total_seconds())
    assert pg_store.demote_idle() == 200
    # Documents, indexes and sorted sets are all gone; the small hash of fence tokens stays.
    assert tenant_keys(pg_store, tenant) == [f"hearth:s:{{{tenant}}}:fence".encode()]
    cold = pg_store.stats()
    assert (cold.hot_sessions, cold.hot_bytes, cold.cold_sessions) == (0, 0, 200)
    assert len(pg_store.list_by_agent(tenant, agent, limit=500).items) == 200


def test_the_redis_cold_tier_compresses(redis_store: RedisSessionStore, clock: ManualClock) -> None:
    tenant = uuid4()
    for i in range(50):
        redis_store.save(make(tenant, variables={"notes": f"{i} " + "lorem ipsum " * 150}))
    hot = redis_store.stats()
    clock.advance(seconds=HOT_TTL.total_seconds())
    assert redis_store.demote_idle() == 50
    cold = redis_store.stats()
    assert (cold.hot_sessions, cold.cold_sessions) == (0, 50)
    # About 2 KB of JSON per session compresses to a few hundred bytes; the hash's fields
    # and the key itself cost some 800 bytes more whatever the document.
    assert 0 < cold.cold_bytes < hot.hot_bytes / 2.5


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
def test_every_key_of_a_tenant_is_in_one_slot_and_purge_leaves_none(
    backend: str, request: pytest.FixtureRequest, clock: ManualClock
) -> None:
    with build_store(backend, request, clock) as store:
        assert isinstance(store, RedisSessionStore)
        tenant, scenario = uuid4(), uuid4()
        sessions = [
            store.save(
                make(
                    tenant,
                    customer_profile_id=uuid4(),
                    active_scenario_id=scenario,
                    active_scenario_version=1,
                    current_step_id=f"step {i}",
                )
            )
            for i in range(4)
        ]
        clock.advance(seconds=HOT_TTL.total_seconds())
        store.demote_idle(limit=2)
        store.delete(tenant, sessions[0].id)
        found = tenant_keys(store, tenant)
        assert len({key_slot(k) for k in found}) == 1
        assert len(found) > 5

        clock.advance(seconds=MAX_AGE.total_seconds())
        assert store.purge_expired() == 3
        leftover = [k for k in tenant_keys(store, tenant) if not k.endswith(b":fence")]
        assert leftover == []  # no index, sorted set or copy outlives its session
        assert_empty(store, tenant, sessions)


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
def test_a_sweep_that_empties_a_tenant_drops_its_keys_and_one_that_does_not_keeps_the_rest(
    backend: str, request: pytest.FixtureRequest, clock: ManualClock
) -> None:
    """A demotion or purge that takes the last sessions a tenant holds in Redis deletes its
    keys at once; one that leaves some keeps every index entry of those."""
    with build_store(backend, request, clock) as store:
        assert isinstance(store, RedisSessionStore)
        tenant, agent, other = uuid4(), uuid4(), uuid4()
        scenario = uuid4()

        def save(i: int) -> Session:
            return store.save(
                Session(
                    tenant_id=tenant,
                    agent_id=agent,
                    channel="web",
                    user_channel_id="same user",
                    active_scenario_id=scenario,
                    active_scenario_version=1,
                    current_step_id="step",
                    variables={"i": i},
                )
            )

        old = [save(i) for i in range(3)]
        bystander = store.save(make(other, agent))
        clock.advance(days=4)
        young = [save(i) for i in range(3, 5)]
        clock.advance(seconds=HOT_TTL.total_seconds())

        def listed() -> set[UUID]:
            page = store.list_by_agent(tenant, agent, limit=50)
            steps = store.find_by_scenario_step(tenant, scenario, 1, "step", limit=50)
            assert {s.id for s in steps.items} == {s.id for s in page.items}
            return {s.id for s in page.items}

        assert store.demote_idle(limit=2) == 2  # leaves three of the tenant's sessions hot
        assert listed() == {s.id for s in old + young}
        assert store.demote_idle() == 4  # the rest, and the other tenant's
        assert listed() == {s.id for s in old + young}
        if not store.cold_tier.in_redis:
            # Every session of the tenant is in the table now: nothing is left in Redis but
            # the fence tokens that guard the rows.
            assert tenant_keys(store, tenant) == [f"hearth:s:{{{tenant}}}:fence".encode()]

        clock.advance(days=3, seconds=1)  # the old ones have expired, the young not
        assert store.purge_expired() == 4  # and the other tenant's
        assert store.get(other, bystander.id) is None
        assert listed() == {s.id for s in young}
        channel = store.get_by_channel(tenant, "web", "same user")
        assert channel is not None
        assert channel.id in {s.id for s in young}

        clock.advance(days=4)
        assert store.purge_expired() == 2
        assert listed() == set()
        for owner in (tenant, other):
            assert [k for k in tenant_keys(store, owner) if not k.endswith(b":fence")] == []


def assert_empty(store: SessionStore, tenant: UUID, sessions: list[Session]) -> None:
    for s in sessions:
        assert store.get(tenant, s.id) is None
    assert store.stats().cold_sessions == 0


@pytest.mark.postgres
def test_a_fresh_store_on_a_restarted_redis_still_reads_the_cold_table(
    pg_store: RedisSessionStore, clock: ManualClock, sessions_database: str, hot_url: str
) -> None:
    tenant, agent = uuid4(), uuid4()
    stored = pg_store.save(make(tenant, agent))
    clock.advance(seconds=HOT_TTL.total_seconds())
    pg_store.demote_idle()
    pg_store.client.flushdb()  # what a Redis restart without persistence leaves
    again = RedisSessionStore.from_url(
        hot_url, cold_tier="postgres", database_url=sessions_database, clock=clock
    )
    try:
        assert again.list_by_agent(tenant, agent).items == [stored]
        assert again.get(tenant, stored.id) == stored
        assert again.tier_of(tenant, stored.id) is Tier.HOT
    finally:
        again.close()


@pytest.mark.postgres
def test_a_session_the_cold_tier_refuses_is_quarantined_and_holds_back_nobody(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant, agent = uuid4(), uuid4()
    good = [pg_store.save(make(tenant, agent, variables={"i": i})) for i in range(5)]
    poison = pg_store.save(make(tenant, agent, variables={"x": "ok"}))
    # Older data, stored before save refused it: jsonb cannot hold NUL.
    hot_key = f"hearth:s:{{{tenant}}}:h:{poison.id}"
    document = pg_store.client.hget(hot_key, "d")
    assert isinstance(document, bytes)
    pg_store.client.hset(hot_key, "d", document.replace(b'"ok"', b'"o\\u0000k"'))
    clock.advance(seconds=HOT_TTL.total_seconds())
    before = pg_store.unmovable_counts()

    assert pg_store.demote_idle() == len(good)
    assert {s.id for s in good} <= {row[0] for row in cold_rows(pg_store)}
    assert poison.id not in {row[0] for row in cold_rows(pg_store)}
    assert pg_store.tier_of(tenant, poison.id) is Tier.HOT
    assert pg_store.count_quarantined() == 1
    after = pg_store.unmovable_counts()
    assert after["quarantined"] == before["quarantined"] + 1
    assert after["changed"] == before["changed"]
    read = pg_store.get(tenant, poison.id)
    assert read is not None
    assert read.variables == {"x": "o\x00k"}
    # Not read again by later passes.
    assert pg_store.count_idle() == 0
    assert pg_store.demote_idle() == 0

    # A save that makes it storable sends it back to the sweep.
    fixed = pg_store.save(read.model_copy(update={"variables": {"x": "ok"}}))
    assert pg_store.count_quarantined() == 0
    clock.advance(seconds=HOT_TTL.total_seconds())
    assert pg_store.demote_idle() == 1
    assert pg_store.tier_of(tenant, poison.id) is Tier.COLD
    again = pg_store.get(tenant, poison.id)
    assert again is not None
    assert again.version == fixed.version


@pytest.mark.postgres
def test_a_quarantined_session_that_is_deleted_leaves_the_quarantine(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant = uuid4()
    poison = pg_store.save(make(tenant, variables={"x": "ok"}))
    hot_key = f"hearth:s:{{{tenant}}}:h:{poison.id}"
    document = pg_store.client.hget(hot_key, "d")
    assert isinstance(document, bytes)
    pg_store.client.hset(hot_key, "d", document.replace(b'"ok"', b'"o\\u0000k"'))
    clock.advance(seconds=HOT_TTL.total_seconds())
    assert pg_store.demote_idle() == 0
    assert pg_store.count_quarantined() == 1
    assert pg_store.delete(tenant, poison.id) is True
    assert pg_store.count_quarantined() == 0


@pytest.mark.postgres
def test_older_data_beyond_a_column_range_stays_readable_and_is_quarantined(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    # Saved before save refused it: a scenario version the int4 column cannot hold.
    tenant, agent = uuid4(), uuid4()
    other = pg_store.save(make(tenant, agent))
    old = pg_store.save(make(tenant, agent, active_scenario_id=uuid4(), active_scenario_version=1))
    hot_key = f"hearth:s:{{{tenant}}}:h:{old.id}"
    document = pg_store.client.hget(hot_key, "d")
    assert isinstance(document, bytes)
    too_big = document.replace(
        b'"active_scenario_version":1', b'"active_scenario_version":2147483648'
    )
    assert too_big != document
    pg_store.client.hset(hot_key, "d", too_big)
    read = pg_store.get(tenant, old.id)
    assert read is not None
    assert read.active_scenario_version == 2**31
    clock.advance(seconds=HOT_TTL.total_seconds())
    assert pg_store.demote_idle() == 1  # the other one
    assert pg_store.tier_of(tenant, other.id) is Tier.COLD
    assert pg_store.count_quarantined() == 1
    assert pg_store.get(tenant, old.id) == read
    assert {s.id for s in pg_store.list_by_agent(tenant, agent).items} == {old.id, other.id}

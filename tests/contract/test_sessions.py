"""The SessionStore contract: every backend passes each of these, written once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from stores.common.clock import ManualClock
from stores.errors import ConflictError, InvalidInputError, NotFoundError
from stores.sessions import (
    PendingMigration,
    Session,
    SessionStatus,
    SessionStore,
    Shard,
    StepVisit,
    Tier,
)
from tests.cluster_support import redis_cluster_nodes, redis_cluster_url  # noqa: F401
from tests.sessions_support import (
    BACKENDS,
    CLUSTER_BACKENDS,
    HOT_TTL,
    MAX_AGE,
    MAX_BYTES,
    build_store,
    module_database,
)


@pytest.fixture(scope="module")
def sessions_database(pg_server: str, pg_template: str) -> Iterator[str]:
    """One database for this module's PostgreSQL cold tier."""
    with module_database(pg_server, pg_template) as url:
        yield url


@pytest.fixture(params=BACKENDS + CLUSTER_BACKENDS)
def store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[SessionStore]:
    """A fresh store of each backend, on the test clock."""
    with build_store(request.param, request, clock) as built:
        yield built


def make(tenant: UUID | None = None, **fields: Any) -> Session:
    """A new session with sensible defaults."""
    fields.setdefault("agent_id", uuid4())
    fields.setdefault("channel", "web")
    fields.setdefault("user_channel_id", f"user-{uuid4().hex[:8]}")
    return Session(tenant_id=tenant or uuid4(), **fields)


def ids(sessions: list[Session]) -> list[UUID]:
    return [s.id for s in sessions]


def test_save_creates_version_1_stamped_by_the_store_clock(
    store: SessionStore, clock: ManualClock
) -> None:
    session = make(variables={"lang": "fr", "n": [1, 2.5, None, True]})
    stored = store.save(session)
    assert stored.version == 1
    assert stored.created_at == clock()
    assert stored.last_activity_at == clock()
    assert store.get(session.tenant_id, session.id) == stored
    assert store.tier_of(session.tenant_id, session.id) is Tier.HOT


def test_every_read_returns_an_independent_copy(store: SessionStore) -> None:
    stored = store.save(make(variables={"a": {"b": 1}}))
    stored.variables["a"]["b"] = 2
    again = store.get(stored.tenant_id, str(stored.id))
    assert again is not None
    assert again.variables == {"a": {"b": 1}}
    again.variables["x"] = 1
    assert store.get(stored.tenant_id, stored.id) == store.get(stored.tenant_id, stored.id)
    assert "x" not in store.get(stored.tenant_id, stored.id).variables  # type: ignore[union-attr]


def test_update_increments_version_keeps_created_at_and_refreshes_activity(
    store: SessionStore, clock: ManualClock
) -> None:
    first = store.save(make())
    created = first.created_at
    clock.advance(minutes=5)
    first.status = SessionStatus.ESCALATED
    first.variables["k"] = "v"
    first.created_at = created - timedelta(days=3)
    second = store.save(first)
    assert second.version == 2
    assert second.created_at == created
    assert second.last_activity_at == clock()
    got = store.get(first.tenant_id, first.id)
    assert got is not None
    assert got.status is SessionStatus.ESCALATED
    assert got.variables == {"k": "v"}


def test_save_of_a_stale_version_is_a_conflict_carrying_the_current_version(
    store: SessionStore,
) -> None:
    v1 = store.save(make())
    v2 = store.save(v1.model_copy())
    with pytest.raises(ConflictError) as info:
        store.save(v1.model_copy(update={"variables": {"lost": True}}))
    assert info.value.current_version == 2
    got = store.get(v1.tenant_id, v1.id)
    assert got == v2
    assert "lost" not in got.variables


def test_a_new_session_must_not_exist_yet(store: SessionStore) -> None:
    stored = store.save(make())
    duplicate = stored.model_copy(update={"version": 0, "variables": {"dup": 1}})
    with pytest.raises(ConflictError) as info:
        store.save(duplicate)
    assert info.value.current_version == 1
    assert store.get(stored.tenant_id, stored.id) == stored


def test_update_of_a_session_that_does_not_exist_is_not_found(store: SessionStore) -> None:
    with pytest.raises(NotFoundError):
        store.save(make(version=3))
    stored = store.save(make())
    assert store.delete(stored.tenant_id, stored.id)
    with pytest.raises(NotFoundError):
        store.save(stored)


def test_overwrite_skips_the_version_check(store: SessionStore) -> None:
    v1 = store.save(make())
    store.save(v1.model_copy())
    forced = store.save(v1.model_copy(update={"variables": {"forced": 1}}), overwrite=True)
    assert forced.version == 3
    assert store.get(v1.tenant_id, v1.id) == forced
    fresh = store.save(make(version=7), overwrite=True)
    assert fresh.version == 1


def test_get_and_delete_of_missing_sessions(store: SessionStore) -> None:
    tenant = uuid4()
    assert store.get(tenant, uuid4()) is None
    assert store.delete(tenant, uuid4()) is False
    assert store.tier_of(tenant, uuid4()) is None
    stored = store.save(make(tenant))
    assert store.delete(tenant, stored.id) is True
    assert store.get(tenant, stored.id) is None
    assert store.delete(tenant, stored.id) is False


def test_a_session_can_be_created_again_after_delete(store: SessionStore) -> None:
    stored = store.save(make())
    store.delete(stored.tenant_id, stored.id)
    again = store.save(stored.model_copy(update={"version": 0}))
    assert again.version == 1


def test_another_tenants_id_behaves_like_a_missing_id_everywhere(
    store: SessionStore, clock: ManualClock
) -> None:
    mine, other = uuid4(), uuid4()
    scenario = uuid4()
    stored = store.save(
        make(
            mine,
            customer_profile_id=uuid4(),
            active_scenario_id=scenario,
            active_scenario_version=1,
            current_step_id="s1",
        )
    )
    assert store.get(other, stored.id) is None
    assert store.tier_of(other, stored.id) is None
    assert store.delete(other, stored.id) is False
    assert store.get_by_channel(other, stored.channel, stored.user_channel_id) is None
    assert store.list_by_agent(other, stored.agent_id).items == []
    assert store.list_by_customer(other, stored.customer_profile_id).items == []  # type: ignore[arg-type]
    assert store.find_by_scenario_step(other, scenario, 1, "s1").items == []
    migration = PendingMigration(
        plan_id=uuid4(), scenario_id=scenario, from_version=1, to_version=2
    )
    assert store.mark_pending_migration(other, scenario, 1, migration) == 0
    clock.advance(hours=1)
    store.demote_idle()
    assert store.get(other, stored.id) is None
    assert store.tier_of(mine, stored.id) is Tier.COLD
    # The same id under another tenant is another session altogether.
    theirs = store.save(stored.model_copy(update={"tenant_id": other, "version": 0}))
    assert theirs.version == 1
    got = store.get(mine, stored.id)
    assert got is not None
    assert got.version == 1
    assert got.pending_migration is None


def test_get_by_channel_returns_the_newest_session_of_the_identity(
    store: SessionStore, clock: ManualClock
) -> None:
    tenant = uuid4()
    old = store.save(make(tenant, channel="whatsapp", user_channel_id="+33 6 12"))
    clock.advance(minutes=1)
    new = store.save(make(tenant, channel="whatsapp", user_channel_id="+33 6 12"))
    store.save(make(tenant, channel="sms", user_channel_id="+33 6 12"))
    found = store.get_by_channel(tenant, "whatsapp", "+33 6 12")
    assert found is not None
    assert found.id == new.id
    store.delete(tenant, new.id)
    found = store.get_by_channel(tenant, "whatsapp", "+33 6 12")
    assert found is not None
    assert found.id == old.id
    assert store.get_by_channel(tenant, "whatsapp", "+33 6 99") is None


def test_channel_index_follows_a_changed_identity(store: SessionStore) -> None:
    tenant = uuid4()
    stored = store.save(make(tenant, channel="web", user_channel_id="a"))
    stored.user_channel_id = "b"
    store.save(stored)
    assert store.get_by_channel(tenant, "web", "a") is None
    found = store.get_by_channel(tenant, "web", "b")
    assert found is not None
    assert found.id == stored.id


def test_list_by_agent_with_status_filter_follows_updates(store: SessionStore) -> None:
    tenant, agent = uuid4(), uuid4()
    a = store.save(make(tenant, agent_id=agent))
    b = store.save(make(tenant, agent_id=agent, status=SessionStatus.CLOSED))
    store.save(make(tenant))  # another agent
    assert set(ids(store.list_by_agent(tenant, agent).items)) == {a.id, b.id}
    assert ids(store.list_by_agent(tenant, agent, status="CLOSED").items) == [b.id]
    a.status = SessionStatus.CLOSED
    store.save(a)
    assert set(ids(store.list_by_agent(tenant, agent, status=SessionStatus.CLOSED).items)) == {
        a.id,
        b.id,
    }
    assert store.list_by_agent(tenant, agent, status="ACTIVE").items == []
    moved = store.get(tenant, b.id)
    assert moved is not None
    moved.agent_id = uuid4()
    store.save(moved)
    assert ids(store.list_by_agent(tenant, agent).items) == [a.id]
    assert ids(store.list_by_agent(tenant, moved.agent_id).items) == [b.id]


def test_list_by_customer_and_scenario_step(store: SessionStore) -> None:
    tenant, customer, scenario = uuid4(), uuid4(), uuid4()
    on_s1 = store.save(
        make(
            tenant,
            customer_profile_id=customer,
            active_scenario_id=scenario,
            active_scenario_version=2,
            current_step_id="s1",
        )
    )
    on_s2 = store.save(
        make(tenant, active_scenario_id=scenario, active_scenario_version=2, current_step_id="s2")
    )
    store.save(
        make(tenant, active_scenario_id=scenario, active_scenario_version=1, current_step_id="s1")
    )
    assert ids(store.list_by_customer(tenant, customer).items) == [on_s1.id]
    assert ids(store.list_by_customer(tenant, customer, status="CLOSED").items) == []
    assert ids(store.find_by_scenario_step(tenant, scenario, 2, "s1").items) == [on_s1.id]
    assert set(ids(store.find_by_scenario_step(tenant, scenario, 2, None).items)) == {
        on_s1.id,
        on_s2.id,
    }
    on_s1.current_step_id = "s2"
    on_s1.customer_profile_id = None
    store.save(on_s1)
    assert store.find_by_scenario_step(tenant, scenario, 2, "s1").items == []
    assert len(store.find_by_scenario_step(tenant, scenario, 2, "s2").items) == 2
    assert store.list_by_customer(tenant, customer).items == []


def test_pagination_neither_skips_nor_repeats_across_tiers_and_changes(
    store: SessionStore, clock: ManualClock
) -> None:
    tenant, agent = uuid4(), uuid4()
    created = [store.save(make(tenant, agent_id=agent)) for _ in range(12)]
    clock.advance(hours=1)
    store.demote_idle()
    for s in created[:4]:
        store.get(tenant, s.id)  # promoted: the listing spans both tiers
    seen: list[UUID] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_by_agent(tenant, agent, limit=5, cursor=cursor)
        seen += ids(page.items)
        pages += 1
        if pages == 1:
            # Changes between pages must not make the listing skip or repeat the others.
            store.save(make(tenant, agent_id=agent, id=UUID(int=0)))
            current = store.get(tenant, page.items[-1].id)
            assert current is not None
            store.save(current)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = sorted(ids(created), key=str)
    assert [i for i in seen if i != UUID(int=0)] == expected
    assert pages == 3
    assert store.list_by_agent(tenant, uuid4()).items == []


def test_listing_returns_no_cursor_when_the_page_is_the_last(store: SessionStore) -> None:
    tenant, agent = uuid4(), uuid4()
    for _ in range(3):
        store.save(make(tenant, agent_id=agent))
    page = store.list_by_agent(tenant, agent, limit=3)
    assert len(page.items) == 3
    assert page.next_cursor is None


def test_tier_lifecycle_with_the_injected_clock(store: SessionStore, clock: ManualClock) -> None:
    tenant, agent = uuid4(), uuid4()
    stored = store.save(
        make(
            tenant, agent_id=agent, channel="web", user_channel_id="u1", customer_profile_id=uuid4()
        )
    )
    assert store.tier_of(tenant, stored.id) is Tier.HOT
    assert store.stats().hot_sessions >= 1

    clock.advance(seconds=HOT_TTL.total_seconds() * 2)
    # A stopped sweeper costs memory, never data: still hot and readable.
    assert store.tier_of(tenant, stored.id) is Tier.HOT
    assert store.get(tenant, stored.id) == stored
    assert store.tier_of(tenant, stored.id) is Tier.HOT

    assert store.demote_idle() >= 1
    assert store.tier_of(tenant, stored.id) is Tier.COLD
    assert store.demote_idle() == 0
    # Cold sessions stay in every index, without being promoted by the lookups.
    found = store.get_by_channel(tenant, "web", "u1")
    assert found == stored
    assert ids(store.list_by_agent(tenant, agent).items) == [stored.id]
    assert ids(store.list_by_customer(tenant, stored.customer_profile_id).items) == [stored.id]  # type: ignore[arg-type]
    assert store.tier_of(tenant, stored.id) is Tier.COLD

    assert store.get(tenant, stored.id) == stored
    assert store.tier_of(tenant, stored.id) is Tier.HOT
    # A promoted session gets a full hot_ttl before the next demotion.
    clock.advance(seconds=HOT_TTL.total_seconds() - 1)
    assert store.demote_idle() == 0
    clock.advance(seconds=1)
    assert store.demote_idle() == 1

    clock.set(stored.created_at + MAX_AGE)
    # Expired: never returned by any read, even before the purge has run.
    assert store.get(tenant, stored.id) is None
    assert store.tier_of(tenant, stored.id) is None
    assert store.get_by_channel(tenant, "web", "u1") is None
    assert store.list_by_agent(tenant, agent).items == []
    with pytest.raises(NotFoundError):
        store.save(stored)

    assert store.purge_expired() == 1
    assert store.purge_expired() == 0
    assert store.stats().cold_sessions == 0
    assert store.stats().hot_sessions == 0
    assert store.delete(tenant, stored.id) is False


def test_idle_time_counts_from_the_last_save_not_from_reads(
    store: SessionStore, clock: ManualClock
) -> None:
    stored = store.save(make())
    clock.advance(seconds=HOT_TTL.total_seconds() - 10)
    store.save(stored)
    clock.advance(seconds=20)
    store.get(stored.tenant_id, stored.id)
    assert store.demote_idle() == 0
    clock.advance(seconds=HOT_TTL.total_seconds())
    assert store.demote_idle() == 1


def test_saving_a_cold_session_brings_it_back_hot(store: SessionStore, clock: ManualClock) -> None:
    stored = store.save(make())
    clock.advance(hours=1)
    store.demote_idle()
    with pytest.raises(ConflictError):
        store.save(stored.model_copy(update={"version": 0}))
    stored.variables["after"] = "cold"
    again = store.save(stored)
    assert again.version == 2
    assert store.tier_of(stored.tenant_id, stored.id) is Tier.HOT
    with pytest.raises(ConflictError) as info:
        store.save(stored)
    assert info.value.current_version == 2


def test_demote_and_purge_honour_their_limits(store: SessionStore, clock: ManualClock) -> None:
    tenant = uuid4()
    for _ in range(5):
        store.save(make(tenant))
    clock.advance(hours=1)
    assert store.demote_idle(limit=2) == 2
    assert store.demote_idle(limit=2) == 2
    assert store.demote_idle(limit=2) == 1
    stats = store.stats()
    assert (stats.hot_sessions, stats.cold_sessions) == (0, 5)
    assert stats.cold_bytes > 0
    store.save(make(tenant))
    clock.advance(seconds=MAX_AGE.total_seconds() - 30 * 60)
    assert store.purge_expired(limit=3) == 3
    assert store.purge_expired(limit=3) == 2
    assert store.purge_expired() == 0
    assert store.stats().hot_sessions == 1


def _tenants_by_bucket(count: int) -> list[UUID]:
    """``count`` tenants, the n-th in sweep bucket n (low bits of the id), so that every
    shard of a split of up to ``count`` shards has tenants."""
    return [UUID(int=(uuid4().int & ~63) | bucket) for bucket in range(count)]


def test_shards_partition_the_sweeps(store: SessionStore, clock: ManualClock) -> None:
    tenants = _tenants_by_bucket(12)
    sessions = [store.save(make(tenant)) for tenant in tenants for _ in range(2)]
    clock.advance(hours=1)
    split = Shard.split(4)

    owner = {s.id: next(i for i, o in enumerate(split) if o.owns(s.tenant_id)) for s in sessions}
    assert sorted(owner.values()) == sorted(list(range(4)) * 6)

    # Each shard moves the sessions of its own tenants, and only those, once.
    for done, shard in enumerate(split):
        assert store.demote_idle(shard=shard) == 6
        assert store.demote_idle(shard=shard) == 0
        for s in sessions:
            expected = Tier.COLD if owner[s.id] <= done else Tier.HOT
            assert store.tier_of(s.tenant_id, s.id) is expected
    # Together they moved every session: nothing is left for a sweep of them all.
    assert store.demote_idle() == 0
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.COLD for s in sessions)

    clock.advance(seconds=MAX_AGE.total_seconds())
    purged = [store.purge_expired(shard=shard) for shard in reversed(split)]
    assert purged == [6, 6, 6, 6]
    assert store.purge_expired() == 0
    assert all(store.get(s.tenant_id, s.id) is None for s in sessions)


def test_a_shard_sweep_honours_its_limit_and_one_shard_is_the_whole_sweep(
    store: SessionStore, clock: ManualClock
) -> None:
    tenants = _tenants_by_bucket(4)
    for tenant in tenants:
        for _ in range(3):
            store.save(make(tenant))
    clock.advance(hours=1)
    half = Shard(1, 2)  # buckets 1 and 3: six sessions
    assert store.demote_idle(limit=4, shard=half) == 4
    assert store.demote_idle(limit=4, shard=half) == 2
    assert store.demote_idle(limit=4, shard=half) == 0
    assert store.demote_idle(shard=Shard(0, 1)) == 6
    assert store.stats().cold_sessions == 12
    clock.advance(seconds=MAX_AGE.total_seconds())
    assert store.purge_expired(limit=5, shard=Shard(0, 2)) == 5
    assert store.purge_expired(limit=5, shard=Shard(0, 2)) == 1
    assert store.purge_expired(shard=Shard(0, 1)) == 6
    assert store.count_expired() == 0


def test_oldest_idle_since_is_the_longest_idle_hot_session(
    store: SessionStore, clock: ManualClock
) -> None:
    assert store.oldest_idle_since() is None
    first = store.save(make(uuid4()))
    started = clock()
    clock.advance(minutes=5)
    store.save(make(uuid4()))
    assert store.oldest_idle_since() == started
    clock.advance(hours=1)
    # Saving it again restarts its idle time: the other one is the oldest now.
    store.save(first)
    assert store.oldest_idle_since() == started + timedelta(minutes=5)
    assert store.demote_idle() == 1
    assert store.oldest_idle_since() == clock()
    assert store.tier_of(first.tenant_id, first.id) is Tier.HOT


def test_counts_of_idle_and_expired_sessions_change_nothing(
    store: SessionStore, clock: ManualClock
) -> None:
    tenants = [uuid4(), uuid4()]
    assert (store.count_idle(), store.count_expired()) == (0, 0)
    demoted = [store.save(make(tenants[0])) for _ in range(2)]
    clock.advance(hours=1)
    assert store.demote_idle() == 2
    idle = [store.save(make(tenant)) for tenant in tenants]
    clock.advance(seconds=HOT_TTL.total_seconds())
    fresh = store.save(make(tenants[1]))

    # Idle counts hot sessions only, of every tenant; the cold ones have moved already.
    assert store.count_idle() == 2
    assert store.count_idle() == 2
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.HOT for s in idle)
    assert store.count_expired() == 0

    clock.advance(seconds=(MAX_AGE - timedelta(hours=1) - HOT_TTL).total_seconds())
    # The two demoted sessions reached max_age (cold tier); the others did not.
    assert store.count_expired() == 2
    assert store.stats().cold_sessions == 2
    assert store.count_idle() == 3
    assert store.purge_expired() == 2
    assert store.count_expired() == 0
    assert all(store.get(s.tenant_id, s.id) is None for s in demoted)
    assert store.get(fresh.tenant_id, fresh.id) is not None


def test_delete_removes_a_cold_session_from_every_index(
    store: SessionStore, clock: ManualClock
) -> None:
    tenant, agent = uuid4(), uuid4()
    stored = store.save(make(tenant, agent_id=agent, user_channel_id="gone"))
    clock.advance(hours=1)
    store.demote_idle()
    assert store.delete(tenant, stored.id) is True
    assert store.get(tenant, stored.id) is None
    assert store.get_by_channel(tenant, "web", "gone") is None
    assert store.list_by_agent(tenant, agent).items == []
    assert store.stats().cold_sessions == 0


def test_mark_pending_migration_marks_both_tiers_once(
    store: SessionStore, clock: ManualClock
) -> None:
    tenant, scenario = uuid4(), uuid4()
    fields = {"active_scenario_id": scenario, "active_scenario_version": 1, "current_step_id": "a"}
    cold = store.save(make(tenant, **fields))
    clock.advance(hours=1)
    store.demote_idle()
    hot = [store.save(make(tenant, **fields)) for _ in range(2)]
    other = store.save(make(tenant, **{**fields, "active_scenario_version": 2}))
    plan = PendingMigration(plan_id=uuid4(), scenario_id=scenario, from_version=1, to_version=2)

    assert store.mark_pending_migration(tenant, scenario, 1, plan, limit=2) == 2
    assert store.mark_pending_migration(tenant, scenario, 1, plan, limit=2) == 1
    assert store.mark_pending_migration(tenant, scenario, 1, plan) == 0

    assert store.tier_of(tenant, cold.id) is Tier.COLD
    for before in [cold, *hot]:
        after = store.get(tenant, before.id)
        assert after is not None
        assert after.version == before.version + 1
        assert after.pending_migration is not None
        assert after.pending_migration.plan_id == plan.plan_id
        assert after.pending_migration.marked_at == clock()
        with pytest.raises(ConflictError):
            store.save(before)  # a writer with an older copy re-reads and sees the mark
    untouched = store.get(tenant, other.id)
    assert untouched is not None
    assert untouched.pending_migration is None
    # Marking is not activity: the marked hot sessions still go cold on time.
    clock.advance(hours=1)
    assert store.demote_idle() == 4


def test_mark_pending_migration_checks_its_arguments(store: SessionStore) -> None:
    scenario = uuid4()
    plan = PendingMigration(plan_id=uuid4(), scenario_id=scenario, from_version=1, to_version=2)
    with pytest.raises(InvalidInputError):
        store.mark_pending_migration(uuid4(), uuid4(), 1, plan)
    with pytest.raises(InvalidInputError):
        store.mark_pending_migration(uuid4(), scenario, 3, plan)
    with pytest.raises(InvalidInputError):
        store.mark_pending_migration("nope", scenario, 1, plan)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get("not-a-uuid", uuid4()),
        lambda s: s.get(uuid4(), "12345"),
        lambda s: s.delete(uuid4(), 42),
        lambda s: s.tier_of(None, uuid4()),
        lambda s: s.get_by_channel("x", "web", "u"),
        lambda s: s.get_by_channel(uuid4(), "", "u"),
        lambda s: s.list_by_agent(uuid4(), "agent"),
        lambda s: s.list_by_agent(uuid4(), uuid4(), status="SLEEPING"),
        lambda s: s.list_by_agent(uuid4(), uuid4(), limit=0),
        lambda s: s.list_by_agent(uuid4(), uuid4(), limit=10_000),
        lambda s: s.list_by_agent(uuid4(), uuid4(), cursor="%%%"),
        lambda s: s.list_by_customer(uuid4(), uuid4(), status="active"),
        lambda s: s.find_by_scenario_step(uuid4(), uuid4(), -1, "s"),
        lambda s: s.find_by_scenario_step(uuid4(), uuid4(), 1, "s\x00"),
        lambda s: s.demote_idle(limit=0),
        lambda s: s.purge_expired(limit=-1),
        lambda s: s.demote_idle(shard=(0, 4)),
        lambda s: s.purge_expired(shard="0/4"),
        lambda s: s.demote_idle(shard=Shard(4, 4)),
        lambda s: s.purge_expired(shard=Shard(0, 65)),
    ],
)
def test_bad_arguments_are_invalid_input(store: SessionStore, call: Any) -> None:
    with pytest.raises(InvalidInputError):
        call(store)


def _too_big() -> dict[str, Any]:
    return {"blob": "x" * MAX_BYTES}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"variables": _too_big()}, "session"),
        ({"variables": {"tags": {"a", "b"}}}, "variables"),
        ({"variables": {"when": object()}}, "variables"),
        ({"variables": {"score": float("nan")}}, "variables"),
        ({"variables": {"inf": [1.0, float("inf")]}}, "variables"),
        ({"variables": {1: "int key"}}, "variables"),
        ({"variables": {"nul": "a\x00b"}}, "session"),
        ({"status": "SLEEPING"}, "status"),
        ({"agent_id": "not-a-uuid"}, "agent_id"),
        ({"channel": ""}, "channel"),
        ({"step_history": [{"step_id": "s"}]}, None),
    ],
)
def test_bad_sessions_are_invalid_input_and_nothing_is_written(
    store: SessionStore, change: dict[str, Any], field: str | None
) -> None:
    stored = store.save(make(variables={"keep": 1}))
    bad = stored.model_copy()
    for name, value in change.items():
        setattr(bad, name, value)  # assignment skips validation, as callers' code may
    with pytest.raises(InvalidInputError) as info:
        store.save(bad)
    if field is not None:
        assert info.value.field is not None
        assert info.value.field.startswith(field)
    assert store.get(stored.tenant_id, stored.id) == stored
    new = make()
    for name, value in change.items():
        setattr(new, name, value)
    with pytest.raises(InvalidInputError):
        store.save(new, overwrite=True)
    assert store.get(new.tenant_id, new.id) is None


def test_a_session_just_under_the_size_limit_is_accepted(store: SessionStore) -> None:
    base = make(variables={"blob": ""})
    overhead = len(base.model_dump_json()) + 200
    stored = store.save(make(variables={"blob": "x" * (MAX_BYTES - overhead)}))
    assert store.get(stored.tenant_id, stored.id) == stored


def test_step_history_and_pending_migration_round_trip(
    store: SessionStore, clock: ManualClock
) -> None:
    session = make(
        step_history=[StepVisit(step_id="greet", entered_at=clock(), turn_number=1)],
        pending_migration=PendingMigration(
            plan_id=uuid4(), scenario_id=uuid4(), from_version=1, to_version=2
        ),
    )
    stored = store.save(session)
    clock.advance(hours=1)
    store.demote_idle()
    assert store.get(session.tenant_id, session.id) == stored

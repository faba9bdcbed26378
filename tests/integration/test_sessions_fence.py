"""The fence of tier moves, one interleaving at a time: the store pauses at its step hooks
and the test runs the competing operation right there, so each case is forced, not hoped
for. Overlapping sweeps, a delete and re-create under the same id (ABA), a crash between two
steps, listings while sessions move, promotions racing deletes and rewrites."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from stores.common.clock import ManualClock
from stores.errors import NotFoundError, StoreUnavailableError
from stores.sessions import PendingMigration, Session, Tier, keys
from stores.sessions.cold_postgres import PostgresColdTier
from stores.sessions.redis import RedisSessionStore
from stores.sessions.redis_sweeps import GROUP
from tests.integration.test_sessions_tiers import wait_for_a_lock_wait
from tests.sessions_support import HOT_TTL, build_store, module_database

pytestmark = pytest.mark.redis

BOTH = [
    "redis-redis-cold",
    pytest.param("redis-postgres-cold", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module")
def sessions_database(pg_server: str, pg_template: str) -> Iterator[str]:
    """One database for this module's PostgreSQL cold tier."""
    with module_database(pg_server, pg_template) as url:
        yield url


@pytest.fixture(params=BOTH)
def store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[RedisSessionStore]:
    with build_store(request.param, request, clock) as built:
        assert isinstance(built, RedisSessionStore)
        yield built


HINT_WAYS = [
    pytest.param((tier, way), id=f"{tier}-hints-{way}", marks=marks)
    for tier, marks in (("redis-redis-cold", ()), ("redis-postgres-cold", pytest.mark.postgres))
    for way in ("in-scripts", "beside")
]


@pytest.fixture(params=HINT_WAYS)
def hinted_store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[RedisSessionStore]:
    """Both cold tiers, each with the sweeps' hints kept by the scripts (one Redis) and
    beside them (a cluster's way, taken here on one Redis)."""
    tier, way = request.param
    with build_store(tier, request, clock) as built:
        assert isinstance(built, RedisSessionStore)
        built.hints_in_scripts = way == "in-scripts"
        yield built


@pytest.fixture(params=BOTH)
def beside_store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[RedisSessionStore]:
    """Hints kept beside the scripts, the way a cluster keeps them, on one Redis: the
    steps between script and hint write exist only that way."""
    with build_store(request.param, request, clock) as built:
        assert isinstance(built, RedisSessionStore)
        built.hints_in_scripts = False
        yield built


@pytest.fixture
def pg_store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[RedisSessionStore]:
    with build_store("redis-postgres-cold", request, clock) as built:
        assert isinstance(built, RedisSessionStore)
        yield built


def make(tenant: UUID, agent: UUID, sid: UUID | None = None, **fields: Any) -> Session:
    extra: dict[str, Any] = {"id": sid} if sid is not None else {}
    return Session(
        tenant_id=tenant, agent_id=agent, channel="web", user_channel_id="u-1", **extra, **fields
    )


def once_at(store: RedisSessionStore, step: str, action: Callable[[], None]) -> None:
    """Run ``action`` the first time the store reaches ``step`` (in the calling thread);
    ``step`` may name several, separated by ``|``."""

    def hook(name: str) -> None:
        if name in step.split("|"):
            store.step_hook = None
            action()

    store.step_hook = hook


def idle(clock: ManualClock) -> None:
    clock.advance(seconds=HOT_TTL.total_seconds())


def assert_everywhere(store: RedisSessionStore, expected: Session) -> None:
    """Every read path gives ``expected`` (the tier_of answer is not checked)."""
    tenant = expected.tenant_id
    assert store.get(tenant, expected.id) == expected
    assert store.list_by_agent(tenant, expected.agent_id).items == [expected]
    assert store.get_by_channel(tenant, "web", "u-1") == expected


def assert_gone(store: RedisSessionStore, tenant: UUID, agent: UUID, sid: UUID) -> None:
    assert store.get(tenant, sid) is None
    assert store.tier_of(tenant, sid) is None
    assert store.list_by_agent(tenant, agent).items == []
    assert store.get_by_channel(tenant, "web", "u-1") is None


def test_overlapping_demotions_and_a_promotion_lose_nothing(
    store: RedisSessionStore, clock: ManualClock
) -> None:
    # Sweep A reads the session; sweep B moves it; a get brings it back; then A goes on
    # with what it read. Before the fence, A's evict removed the promoted copy.
    tenant, agent = uuid4(), uuid4()
    stored = store.save(make(tenant, agent))
    idle(clock)
    overtaken: list[int] = []

    def sweep_b_then_get() -> None:
        overtaken.append(store.demote_idle())
        assert store.tier_of(tenant, stored.id) is Tier.COLD
        assert store.get(tenant, stored.id) == stored

    once_at(store, "demote:read", sweep_b_then_get)
    assert store.demote_idle() == 0  # sweep A
    assert overtaken == [1]
    assert store.fence_refusals >= 1
    assert store.tier_of(tenant, stored.id) is Tier.HOT
    assert_everywhere(store, stored)
    idle(clock)
    assert store.demote_idle() == 1
    assert_everywhere(store, stored)


def test_a_delete_and_re_create_under_the_same_id_is_not_demoted_as_the_old_one(
    store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant, agent = uuid4(), uuid4()
    old = store.save(make(tenant, agent, variables={"life": "first"}))
    idle(clock)
    again: list[Session] = []

    def delete_and_re_create() -> None:
        assert store.delete(tenant, old.id)
        # Same id, same version (1), same clock: only the incarnation tells them apart.
        again.append(store.save(make(tenant, agent, sid=old.id, variables={"life": "second"})))

    once_at(store, "demote:read", delete_and_re_create)
    assert store.demote_idle() == 0
    (new,) = again
    assert new.version == old.version
    assert_everywhere(store, new)
    idle(clock)
    assert store.demote_idle() == 1
    assert_everywhere(store, new)
    assert store.delete(tenant, new.id)
    assert_gone(store, tenant, agent, new.id)


def test_a_demotion_read_before_two_deletes_under_one_id_does_not_bring_the_first_back(
    store: RedisSessionStore, clock: ManualClock
) -> None:
    """The copy a demotion read lands after its session was deleted, created again under the
    same id and deleted again: the table then holds the later incarnation's deletion marker,
    which a copy of an earlier incarnation must not overwrite."""
    tenant, agent = uuid4(), uuid4()
    old = store.save(make(tenant, agent, variables={"life": "first"}))
    idle(clock)

    def delete_re_create_delete() -> None:
        assert store.delete(tenant, old.id)
        clock.advance(seconds=1)
        second = store.save(make(tenant, agent, sid=old.id, variables={"life": "second"}))
        assert store.delete(tenant, second.id)

    once_at(store, "demote:read", delete_re_create_delete)
    assert store.demote_idle() == 0
    assert_gone(store, tenant, agent, old.id)
    # Nothing is left under the id: a creation goes through, and is what a read finds.
    third = store.save(make(tenant, agent, sid=old.id, variables={"life": "third"}))
    assert store.get(tenant, old.id) == third


def test_a_redis_cold_promotion_is_not_fooled_by_a_re_created_session(
    request: pytest.FixtureRequest, clock: ManualClock
) -> None:
    with build_store("redis-redis-cold", request, clock) as built:
        assert isinstance(built, RedisSessionStore)
        store = built
        tenant, agent = uuid4(), uuid4()
        old = store.save(make(tenant, agent, variables={"life": "first"}))
        idle(clock)
        assert store.demote_idle() == 1
        again: list[Session] = []

        def replace_while_promoting() -> None:
            assert store.delete(tenant, old.id)
            again.append(store.save(make(tenant, agent, sid=old.id, variables={"life": "2"})))
            idle(clock)
            assert store.demote_idle() == 1  # the new one is cold, at the same version

        once_at(store, "promote:read", replace_while_promoting)
        got = store.get(tenant, old.id)
        (new,) = again
        assert got == new
        assert store.fence_refusals == 1
        assert_everywhere(store, new)


@pytest.mark.postgres
def test_a_crash_between_copy_and_evict_then_a_delete_brings_nothing_back(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = pg_store
    tenant, agent = uuid4(), uuid4()
    stored = store.save(make(tenant, agent))
    idle(clock)

    def crash() -> None:
        raise StoreUnavailableError("the sweeper died here (simulated)")

    once_at(store, "demote:copied", crash)
    with pytest.raises(StoreUnavailableError):
        store.demote_idle()
    assert store.tier_of(tenant, stored.id) is Tier.HOT
    assert_everywhere(store, stored)
    assert store.delete(tenant, stored.id)
    assert_gone(store, tenant, agent, stored.id)
    # Long after any tombstone would have expired, and after more sweeps, still gone.
    clock.advance(hours=6)
    assert store.demote_idle() == 0
    assert store.purge_expired() == 0
    assert_gone(store, tenant, agent, stored.id)


@pytest.mark.postgres
def test_a_promotion_that_read_the_row_before_a_delete_cannot_land(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    # The promotion's transaction is gone (its lock with it) but its Redis write is still
    # on the way when a delete runs: the fence token the delete replaced refuses it.
    store = pg_store
    tenant, agent = uuid4(), uuid4()
    stored = store.save(make(tenant, agent))
    idle(clock)
    assert store.demote_idle() == 1
    tier = store.cold_tier
    assert isinstance(tier, PostgresColdTier)
    results: list[bool] = []

    def delete_meanwhile() -> None:
        # The claim holds the row; a delete from another thread waits for it, so release
        # it as a lost connection would: roll the claim back under the promotion's feet.
        deleter = threading.Thread(target=lambda: results.append(store.delete(tenant, sid)))
        with tier.engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                    "AND state = 'idle in transaction'"
                )
            )
        deleter.start()
        deleter.join()

    sid = stored.id
    once_at(store, "promote:claimed", delete_meanwhile)
    with pytest.raises(StoreUnavailableError):
        store.get(tenant, sid)
    assert results == [True]
    assert store.fence_refusals == 1  # refused by the token: nothing was written
    assert_gone(store, tenant, agent, sid)


def test_a_listing_sees_a_session_that_moves_while_it_runs(
    store: RedisSessionStore, clock: ManualClock
) -> None:
    tenant, agent = uuid4(), uuid4()
    stored = store.save(make(tenant, agent))
    idle(clock)

    def demote_now() -> None:
        assert store.demote_idle() == 1

    once_at(store, "list:index", demote_now)
    assert store.list_by_agent(tenant, agent).items == [stored]

    def promote_now() -> None:
        assert store.get(tenant, stored.id) == stored

    once_at(store, "list:index", promote_now)
    assert store.list_by_agent(tenant, agent).items == [stored]


@pytest.mark.postgres
def test_a_listing_never_serves_a_row_older_than_the_hot_copy(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    # The row is read (for its id) before the session comes back, changes and goes cold
    # again: the listing must give the newest version.
    store = pg_store
    tenant, agent = uuid4(), uuid4()
    stored = store.save(make(tenant, agent))
    idle(clock)
    assert store.demote_idle() == 1
    newer: list[Session] = []

    def change_and_demote() -> None:
        current = store.get(tenant, stored.id)
        assert current is not None
        current.variables["changed"] = True
        newer.append(store.save(current))
        idle(clock)
        assert store.demote_idle() == 1

    once_at(store, "list:index", change_and_demote)
    listed = store.list_by_agent(tenant, agent).items
    assert listed == newer


@pytest.mark.postgres
def test_a_save_over_a_cold_session_racing_a_delete_leaves_it_deleted(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = pg_store
    tenant, agent = uuid4(), uuid4()
    stored = store.save(make(tenant, agent))
    idle(clock)
    assert store.demote_idle() == 1
    tier = store.cold_tier
    assert isinstance(tier, PostgresColdTier)
    deleted: list[bool] = []
    deleter = threading.Thread(target=lambda: deleted.append(store.delete(tenant, stored.id)))

    def delete_while_claimed() -> None:
        deleter.start()  # it finds no hot copy and waits for the row
        with tier.engine.connect() as conn:
            wait_for_a_lock_wait(conn)

    once_at(store, "save:claimed", delete_while_claimed)
    stored.variables["x"] = 1
    saved = store.save(stored)
    deleter.join()
    assert saved.version == 2
    assert deleted == [True]
    assert_gone(store, tenant, agent, stored.id)
    idle(clock)
    assert store.demote_idle() == 0
    assert_gone(store, tenant, agent, stored.id)


@pytest.mark.postgres
def test_a_migration_mark_on_a_cold_row_fences_off_a_promotion_that_read_it(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = pg_store
    tenant, agent, scenario = uuid4(), uuid4(), uuid4()
    stored = store.save(make(tenant, agent, active_scenario_id=scenario, active_scenario_version=1))
    idle(clock)
    assert store.demote_idle() == 1
    tier = store.cold_tier
    assert isinstance(tier, PostgresColdTier)
    read: list[Session | None] = []
    reader = threading.Thread(target=lambda: read.append(store.get(tenant, stored.id)))

    def promote_while_locked() -> None:
        reader.start()  # the promotion waits for the row the mark holds
        with tier.engine.connect() as conn:
            wait_for_a_lock_wait(conn)

    once_at(store, "rewrite:locked", promote_while_locked)
    mark = PendingMigration(plan_id=uuid4(), scenario_id=scenario, from_version=1, to_version=2)
    assert store.mark_pending_migration(tenant, scenario, 1, mark) == 1
    reader.join()
    (got,) = read
    assert got is not None
    assert got.version == 2
    assert got.pending_migration is not None
    assert got.pending_migration.plan_id == mark.plan_id
    assert store.get(tenant, stored.id) == got


@pytest.mark.postgres
def test_a_redis_crash_right_after_a_promotion_loses_nothing(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = pg_store
    tenant, agent = uuid4(), uuid4()
    stored = store.save(make(tenant, agent))
    idle(clock)
    assert store.demote_idle() == 1
    assert store.get(tenant, stored.id) == stored  # promoted: the row stays as a backup
    store.client.flushdb()  # a Redis that lost everything since its last save
    assert store.tier_of(tenant, stored.id) is Tier.COLD
    assert_everywhere(store, stored)
    stored.variables["after"] = True
    newer = store.save(stored)
    assert newer.version == 2
    assert_everywhere(store, newer)


def registered(store: RedisSessionStore, tenant: UUID) -> bool:
    return bool(store.client.sismember(keys.registry(keys.bucket_of(tenant)), str(tenant)))


def test_an_empty_tenant_leaves_the_registry_and_a_new_session_brings_it_back(
    hinted_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = hinted_store
    tenant, agent = uuid4(), uuid4()
    first = store.save(make(tenant, agent))
    assert registered(store, tenant)
    assert store.delete(tenant, first.id)
    # The purge's hint still says "created then": the tenant is visited once that is due.
    assert store.purge_expired() == 0
    assert registered(store, tenant)
    clock.advance(days=8)
    assert store.purge_expired() == 0
    assert not registered(store, tenant)
    assert store.client.keys(f"hearth:s:{{{tenant}}}:*") == []
    second = store.save(make(tenant, agent))
    assert registered(store, tenant)
    idle(clock)
    assert store.demote_idle() == 1
    assert store.tier_of(tenant, second.id) is Tier.COLD


def test_a_session_created_while_the_purge_takes_its_tenant_off_is_not_left_unregistered(
    beside_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = beside_store
    tenant, agent = uuid4(), uuid4()
    third = store.save(make(tenant, agent))
    assert store.delete(tenant, third.id)
    clock.advance(days=8)
    created: list[Session] = []
    once_at(store, "prune:removed", lambda: created.append(store.save(make(tenant, agent))))
    assert store.purge_expired() == 0
    assert len(created) == 1
    assert registered(store, tenant)
    idle(clock)
    assert store.demote_idle() == 1
    assert store.tier_of(tenant, created[0].id) is Tier.COLD


def test_sweeps_visit_only_tenants_with_work_due(
    hinted_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = hinted_store
    visited: list[UUID] = []
    busy, quiet = uuid4(), uuid4()
    store.save(make(quiet, uuid4()))
    idle(clock)
    store.save(make(busy, uuid4()))  # not idle yet
    real = store._hints.send_many

    def counting(name: str, common: list[Any], calls: list[Any]) -> Any:
        if name == "idle":
            visited.extend(tenant for tenant, _, _ in calls)
        return real(name, common, calls)

    store._hints.send_many = counting  # type: ignore[method-assign]
    assert store.demote_idle() == 1
    assert visited == [quiet]
    visited.clear()
    assert store.demote_idle() == 0
    assert visited == []  # nothing due: no tenant visited
    idle(clock)
    assert store.demote_idle() == 1
    assert visited == [busy]


def test_a_sweep_over_many_tenants_moves_each_session_once(
    hinted_store: RedisSessionStore, clock: ManualClock
) -> None:
    """Over more tenants than a group holds, the groups' steps overlap on one Redis: every
    idle session moves, none is read again while its move is on its way (no fenced step
    refuses), and the hints end true."""
    store = hinted_store
    big = uuid4()
    for _ in range(40):
        store.save(make(big, uuid4()))
    small = [uuid4() for _ in range(2 * GROUP + 10)]
    for tenant in small:
        store.save(make(tenant, uuid4()))
    idle(clock)
    refusals = store.fence_refusals
    moved = [store.demote_idle(limit=300) for _ in range(3)]
    assert moved == [300, 40 + len(small) - 300, 0]
    assert store.fence_refusals == refusals
    assert store.count_idle() == 0
    assert store.stats().cold_sessions == 40 + len(small)
    assert_hints_are_the_truth(store)


def test_a_purge_over_many_tenants_removes_each_session_once_within_its_limit(
    hinted_store: RedisSessionStore, clock: ManualClock
) -> None:
    """Over more tenants than a group holds, two groups' purges are on their way at once on
    one Redis, each within its share of the limit: every expired session goes, no call
    removes more than its limit, and the hints end true."""
    store = hinted_store
    big = uuid4()
    for _ in range(40):
        store.save(make(big, uuid4()))
    small = [uuid4() for _ in range(2 * GROUP + 10)]
    for tenant in small:
        store.save(make(tenant, uuid4()))
    clock.advance(days=7, seconds=-1)
    kept = store.save(make(small[0], uuid4()))  # a second session of one tenant, later
    clock.advance(seconds=2)  # all but that one have expired
    removed = [store.purge_expired(limit=300) for _ in range(3)]
    assert removed == [300, 40 + len(small) - 300, 0]
    assert store.get(small[0], kept.id) is not None
    assert store.count_expired() == 0
    assert_hints_are_the_truth(store, early_idle=not store.hints_in_scripts)


def test_a_lost_registry_is_rebuilt_from_the_keys(
    hinted_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = hinted_store
    tenants = [uuid4() for _ in range(3)]
    saved = [store.save(make(t, uuid4())) for t in tenants]
    clock.advance(minutes=1)
    # A session each that stays hot: a tenant left with nothing in Redis leaves the registry.
    fresh = [store.save(make(t, uuid4())) for t in tenants]
    for bucket in range(keys.REGISTRY_BUCKETS):
        store.client.delete(keys.registry(bucket), keys.due_idle(bucket), keys.due_created(bucket))
    clock.advance(seconds=HOT_TTL.total_seconds() - 60)
    assert store.demote_idle() == 3
    assert all(registered(store, t) for t in tenants)
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.COLD for s in saved)
    assert all(store.tier_of(s.tenant_id, s.id) is Tier.HOT for s in fresh)


def assert_hints_are_the_truth(store: RedisSessionStore, *, early_idle: bool = False) -> None:
    """Every tenant holding sessions in Redis is registered, with hints exactly its oldest
    idle and created scores; no other tenant is registered or hinted. With ``early_idle``,
    an idle hint may be early (a purge kept beside the scripts leaves it so)."""
    client: Any = store.client
    held = {
        key.split(b"{", 1)[1].split(b"}", 1)[0].decode()
        for key in client.scan_iter(match="hearth:s:{*}:created")
    }
    for bucket in range(keys.REGISTRY_BUCKETS):
        members = {m.decode() for m in client.smembers(keys.registry(bucket))}
        mine = {t for t in held if keys.bucket_of(UUID(t)) == bucket}
        assert members == mine
        for hint, zset in ((keys.due_idle, keys.idle), (keys.due_created, keys.created)):
            hinted = dict(client.zrange(hint(bucket), 0, -1, withscores=True))
            truth = {}
            for tenant in mine:
                first = client.zrange(zset(keys.base(UUID(tenant))), 0, 0, withscores=True)
                if first:
                    truth[tenant.encode()] = first[0][1]
            if early_idle and hint is keys.due_idle:
                assert hinted.keys() >= truth.keys()
                assert all(hinted[t] <= score for t, score in truth.items())
            else:
                assert hinted == truth


def test_sweep_scripts_on_one_redis_leave_every_hint_exactly_true(
    store: RedisSessionStore, clock: ManualClock
) -> None:
    """With the hints kept by the scripts, each sweep leaves every tenant's hints at its
    exact oldest scores, and the registry at the tenants holding sessions: nothing early,
    nothing late, nothing for a later pass to repair. (Only new sessions come in here: a
    delete or a touch leaves a hint early, until a sweep visits the tenant.)"""
    assert store.hints_in_scripts
    tenants = [uuid4() for _ in range(12)]
    agent = uuid4()
    for round_ in range(4):
        for i, tenant in enumerate(tenants):
            if (i + round_) % 3:
                store.save(make(tenant, agent))
        clock.advance(minutes=20)
        assert store.demote_idle(limit=5) >= 0
        assert store.demote_idle() >= 0
        assert_hints_are_the_truth(store)
        clock.advance(days=2)
        assert store.purge_expired(limit=3) >= 0
        assert store.purge_expired() >= 0
        assert_hints_are_the_truth(store)


def test_the_purge_removes_the_index_entries_of_a_cold_key_that_expired(
    request: pytest.FixtureRequest, clock: ManualClock
) -> None:
    with build_store("redis-redis-cold", request, clock) as built:
        assert isinstance(built, RedisSessionStore)
        store = built
        tenant, agent = uuid4(), uuid4()
        stored = store.save(make(tenant, agent, customer_profile_id=uuid4()))
        idle(clock)
        assert store.demote_idle() == 1
        # What the cold key's TTL does when no purge came in time.
        assert store.client.delete(f"hearth:s:{{{tenant}}}:c:{stored.id}") == 1
        assert store.list_by_agent(tenant, agent).items == []
        assert store.client.keys(f"hearth:s:{{{tenant}}}:i:*") != []
        clock.advance(days=8)
        assert store.purge_expired() == 1
        assert store.client.keys(f"hearth:s:{{{tenant}}}:*") == []
        assert not registered(store, tenant)


@pytest.mark.postgres
def test_a_delete_says_true_when_the_session_was_demoted_under_it(
    pg_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = pg_store
    tenant, agent = uuid4(), uuid4()
    stored = store.save(make(tenant, agent))
    idle(clock)
    once_at(store, "delete:read", lambda: store.demote_idle() and None)
    assert store.delete(tenant, stored.id) is True
    assert store.tier_of(tenant, stored.id) is None
    assert_gone(store, tenant, agent, stored.id)


def test_a_session_created_while_a_sweep_moves_its_tenants_hint_is_still_demoted(
    beside_store: RedisSessionStore, clock: ManualClock
) -> None:
    store = beside_store
    tenant, agent = uuid4(), uuid4()
    store.save(make(tenant, agent))
    idle(clock)
    created: list[Session] = []
    # The sweep has found the idle set empty and is about to drop the hint when a session
    # arrives, hint and all: the sweep's second look puts the hint back. With the PostgreSQL
    # cold tier the tenant holds nothing in Redis then, and leaves the registry instead: the
    # look after that puts it back.
    once_at(
        store,
        "refresh:read|prune:removed",
        lambda: created.append(store.save(make(tenant, agent))),
    )
    assert store.demote_idle() == 1
    (late,) = created
    bucket = keys.bucket_of(tenant)
    assert store.client.zscore(keys.due_idle(bucket), str(tenant)) is not None
    idle(clock)
    assert store.demote_idle() == 1
    assert store.tier_of(tenant, late.id) is Tier.COLD


def test_reads_and_refused_saves_of_sessions_that_do_not_exist_write_nothing(
    store: RedisSessionStore,
) -> None:
    tenant = uuid4()
    assert store.get(tenant, uuid4()) is None
    assert store.tier_of(tenant, uuid4()) is None
    ghost = make(tenant, uuid4()).model_copy(update={"version": 3})
    with pytest.raises(NotFoundError):
        store.save(ghost)
    assert store.client.keys("*") == []
    assert store.delete(tenant, uuid4()) is False
    assert store.client.keys("*") == []

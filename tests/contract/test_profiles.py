"""The ProfileStore contract: every backend behaves like the in-memory reference."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from stores.common.clock import ManualClock
from stores.errors import DuplicateError, InvalidInputError, NotFoundError
from stores.postgres.engine import create_engine
from stores.profiles import (
    ChannelIdentity,
    CustomerProfile,
    FieldSource,
    InMemoryProfileStore,
    ProfileAsset,
    ProfileStore,
)
from tests import services


@pytest.fixture(scope="module")
def shared_engine(pg_server: str, pg_template: str) -> Iterator[sa.Engine]:
    """One migrated database for the whole module; each test uses fresh tenant ids."""
    name = services.unique_name("hearth_profiles")
    url = services.create_database(pg_server, name, template=pg_template)
    engine = create_engine(url, pool_size=2)
    try:
        yield engine
    finally:
        engine.dispose()
        services.drop_database(pg_server, name)


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[ProfileStore]:
    if request.param == "memory":
        yield InMemoryProfileStore(clock=clock)
        return
    from stores.profiles import PostgresProfileStore

    engine = request.getfixturevalue("shared_engine")
    yield PostgresProfileStore(engine, clock=clock)


@pytest.fixture
def tenant() -> UUID:
    return uuid4()


def new_profile(
    store: ProfileStore, tenant: UUID, external_id: str | None = None
) -> CustomerProfile:
    return store.create_profile(CustomerProfile(tenant_id=tenant, external_id=external_id))


def link(store: ProfileStore, profile: CustomerProfile, channel: str, user: str) -> ChannelIdentity:
    return store.link_identity(
        ChannelIdentity(
            tenant_id=profile.tenant_id,
            profile_id=profile.id,
            channel=channel,
            channel_user_id=user,
        )
    )


def asset(store: ProfileStore, profile: CustomerProfile, kind: str = "document") -> ProfileAsset:
    return store.add_asset(
        ProfileAsset(
            tenant_id=profile.tenant_id,
            profile_id=profile.id,
            asset_type=kind,
            asset_reference=f"s3://bucket/{uuid4()}",
            metadata={"size": 10},
        )
    )


def collect(fetch: Any, limit: int) -> list[Any]:
    """Walk every page of a listing; fail on a repeated item."""
    seen: list[Any] = []
    cursor = None
    while True:
        page = fetch(limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    ids = [i.id for i in seen]
    assert len(ids) == len(set(ids)), "a page repeated an item"
    return seen


# ---- profiles ---------------------------------------------------------------------------


def test_create_and_get_profile(store: ProfileStore, tenant: UUID, clock: ManualClock) -> None:
    p = new_profile(store, tenant, "cust-1")
    assert p.created_at == p.updated_at == clock()
    assert store.get_profile(tenant, p.id) == p
    assert store.get_profile(str(tenant), str(p.id)) == p
    assert store.get_profile_by_external_id(tenant, "cust-1") == p
    assert store.get_profile(tenant, uuid4()) is None
    assert store.get_profile_by_external_id(tenant, "nobody") is None
    with pytest.raises(DuplicateError):
        store.create_profile(p)
    with pytest.raises(DuplicateError):
        store.create_profile(p.model_copy(update={"tenant_id": uuid4(), "external_id": None}))


def test_external_id_is_unique_per_tenant(
    store: ProfileStore, tenant: UUID, clock: ManualClock
) -> None:
    new_profile(store, tenant, "ext")
    with pytest.raises(DuplicateError):
        new_profile(store, tenant, "ext")
    new_profile(store, uuid4(), "ext")
    a, b = new_profile(store, tenant), new_profile(store, tenant)
    clock.advance(seconds=5)
    changed = store.set_external_id(tenant, a.id, "ext-a")
    assert changed.external_id == "ext-a"
    assert changed.updated_at == clock()
    with pytest.raises(DuplicateError):
        store.set_external_id(tenant, b.id, "ext")
    assert store.set_external_id(tenant, a.id, "ext-a").external_id == "ext-a"
    assert store.set_external_id(tenant, a.id, None).external_id is None
    assert store.get_profile_by_external_id(tenant, "ext-a") is None
    with pytest.raises(NotFoundError):
        store.set_external_id(tenant, uuid4(), "zzz")


def test_list_profiles_paginates_oldest_first(
    store: ProfileStore, tenant: UUID, clock: ManualClock
) -> None:
    made = []
    for i in range(7):
        made.append(new_profile(store, tenant))
        if i % 2:
            clock.advance(seconds=1)
    new_profile(store, uuid4())
    got = collect(lambda **kw: store.list_profiles(tenant, **kw), 3)
    assert [p.id for p in got] == [p.id for p in sorted(made, key=lambda p: (p.created_at, p.id))]
    assert store.list_profiles(uuid4()).items == []


def test_delete_profile_removes_everything_it_owns(store: ProfileStore, tenant: UUID) -> None:
    keep = new_profile(store, tenant)
    link(store, keep, "web", "keep")
    p, merged = new_profile(store, tenant, "gone"), new_profile(store, tenant)
    link(store, p, "sms", "+1")
    link(store, merged, "sms", "+2")
    store.set_field(tenant, p.id, "name", "Ann")
    a = asset(store, p)
    store.merge_profiles(tenant, merged.id, p.id)
    assert store.delete_profile(uuid4(), p.id) is False
    assert store.delete_profile(tenant, merged.id) is True
    assert store.get_profile(tenant, p.id) is None
    assert store.get_profile(tenant, merged.id, follow_merges=False) is None
    assert store.resolve_identity(tenant, "sms", "+1") is None
    assert store.resolve_identity(tenant, "sms", "+2") is None
    assert store.get_asset(tenant, a.id) is None
    assert store.field_history(tenant, p.id).items == []
    assert store.get_profile_by_external_id(tenant, "gone") is None
    assert store.delete_profile(tenant, p.id) is False
    assert store.resolve_identity(tenant, "web", "keep") == keep
    new_profile(store, tenant, "gone")


# ---- identities ---------------------------------------------------------------------------


def test_identity_resolves_to_its_profile(
    store: ProfileStore, tenant: UUID, clock: ManualClock
) -> None:
    p = new_profile(store, tenant)
    ident = store.link_identity(
        ChannelIdentity(
            tenant_id=tenant,
            profile_id=p.id,
            channel="whatsapp",
            channel_user_id="+4917",
            verified=True,
        )
    )
    assert ident.created_at == clock()
    assert ident.verified
    assert store.resolve_identity(tenant, "whatsapp", "+4917") == p
    assert store.get_identity(tenant, "whatsapp", "+4917") == ident
    assert store.resolve_identity(tenant, "sms", "+4917") is None
    assert store.get_identity(tenant, "whatsapp", "+4918") is None


def test_channel_identity_is_unique_per_tenant(store: ProfileStore, tenant: UUID) -> None:
    p, q = new_profile(store, tenant), new_profile(store, tenant)
    ident = link(store, p, "web", "u1")
    with pytest.raises(DuplicateError):
        link(store, q, "web", "u1")
    with pytest.raises(DuplicateError):
        store.link_identity(ident.model_copy(update={"channel_user_id": "u2"}))
    link(store, q, "sms", "u1")
    link(store, new_profile(store, uuid4()), "web", "u1")
    assert store.resolve_identity(tenant, "web", "u1") == p


def test_link_to_a_missing_or_foreign_profile_is_not_found(
    store: ProfileStore, tenant: UUID
) -> None:
    foreign = new_profile(store, uuid4())
    for pid in (uuid4(), foreign.id):
        with pytest.raises(NotFoundError):
            store.link_identity(
                ChannelIdentity(
                    tenant_id=tenant, profile_id=pid, channel="web", channel_user_id="x"
                )
            )
        with pytest.raises(NotFoundError):
            store.add_asset(
                ProfileAsset(tenant_id=tenant, profile_id=pid, asset_type="t", asset_reference="r")
            )
    assert store.get_identity(tenant, "web", "x") is None


def test_list_and_unlink_identities(store: ProfileStore, tenant: UUID, clock: ManualClock) -> None:
    p = new_profile(store, tenant)
    made = []
    for i in range(5):
        made.append(link(store, p, "web", f"u{i}"))
        clock.advance(seconds=i % 2)
    link(store, new_profile(store, tenant), "web", "other")
    got = collect(lambda **kw: store.list_identities(tenant, p.id, **kw), 2)
    assert [i.id for i in got] == [i.id for i in sorted(made, key=lambda i: (i.created_at, i.id))]
    assert store.unlink_identity(uuid4(), made[0].id) is False
    assert store.unlink_identity(tenant, made[0].id) is True
    assert store.unlink_identity(tenant, made[0].id) is False
    assert store.resolve_identity(tenant, "web", "u0") is None
    assert len(store.list_identities(tenant, p.id).items) == 4
    assert store.list_identities(tenant, uuid4()).items == []


# ---- fields ---------------------------------------------------------------------------


def test_set_field_closes_the_current_value_and_keeps_history(
    store: ProfileStore, tenant: UUID, clock: ManualClock
) -> None:
    p = new_profile(store, tenant)
    t0 = clock()
    first = store.set_field(tenant, p.id, "email", "a@x.io", source="EXTRACTED", confidence=0.5)
    assert (first.valid_from, first.valid_to, first.source) == (t0, None, FieldSource.EXTRACTED)
    t1 = clock.advance(hours=1)
    second = store.set_field(tenant, p.id, "email", "b@x.io", verified=True)
    t2 = clock.advance(hours=1)
    third = store.set_field(tenant, p.id, "email", {"primary": "c@x.io", "all": ["b", "c"]})
    assert (second.valid_from, second.verified, second.confidence) == (t1, True, 1.0)

    current = store.get_field(tenant, p.id, "email")
    assert current == third
    assert current.valid_to is None
    history = store.field_history(tenant, p.id, field_name="email").items
    assert [h.field_value for h in history] == ["a@x.io", "b@x.io", third.field_value]
    assert [(h.valid_from, h.valid_to) for h in history] == [(t0, t1), (t1, t2), (t2, None)]
    assert history[0].source == FieldSource.EXTRACTED
    assert history[0].confidence == 0.5


def test_field_value_as_of_a_time(store: ProfileStore, tenant: UUID, clock: ManualClock) -> None:
    p = new_profile(store, tenant)
    t0 = clock()
    store.set_field(tenant, p.id, "tier", "silver")
    t1 = clock.advance(days=1)
    store.set_field(tenant, p.id, "tier", "gold")
    store.set_field(tenant, p.id, "city", "Oslo")
    t2 = clock.advance(days=1)
    assert store.clear_field(tenant, p.id, "tier") is True
    assert store.clear_field(tenant, p.id, "tier") is False

    def tier(at: datetime | None) -> Any:
        f = store.get_field(tenant, p.id, "tier", as_of=at)
        return f.field_value if f else None

    assert tier(t0 - timedelta(seconds=1)) is None
    assert tier(t0) == "silver"
    assert tier(t1 - timedelta(microseconds=1)) == "silver"
    assert tier(t1) == "gold"
    assert tier(t2) is None
    assert tier(None) is None
    assert {k: v.field_value for k, v in store.get_fields(tenant, p.id, as_of=t1).items()} == {
        "city": "Oslo",
        "tier": "gold",
    }
    assert {k: v.field_value for k, v in store.get_fields(tenant, p.id).items()} == {"city": "Oslo"}
    assert store.get_fields(tenant, p.id, as_of=t0 - timedelta(days=1)) == {}


def test_set_twice_at_one_instant_leaves_one_current_value(
    store: ProfileStore, tenant: UUID, clock: ManualClock
) -> None:
    p = new_profile(store, tenant)
    store.set_field(tenant, p.id, "n", 1)
    store.set_field(tenant, p.id, "n", 2)
    current = store.get_field(tenant, p.id, "n")
    assert current is not None
    assert current.field_value == 2
    assert store.get_field(tenant, p.id, "n", as_of=clock()) == current
    clock.set(clock() - timedelta(hours=1))
    third = store.set_field(tenant, p.id, "n", 3)
    assert third.valid_from == current.valid_from
    history = store.field_history(tenant, p.id).items
    assert len(history) == 3
    assert [h.valid_to is None for h in history].count(True) == 1


def test_field_history_paginates(store: ProfileStore, tenant: UUID, clock: ManualClock) -> None:
    p = new_profile(store, tenant)
    for i in range(7):
        store.set_field(tenant, p.id, f"f{i % 3}", i)
        clock.advance(minutes=1)
    got = collect(lambda **kw: store.field_history(tenant, p.id, **kw), 2)
    assert [f.field_value for f in got] == list(range(7))
    only = collect(lambda **kw: store.field_history(tenant, p.id, field_name="f1", **kw), 1)
    assert [f.field_value for f in only] == [1, 4]


def test_fields_of_missing_profiles(store: ProfileStore, tenant: UUID) -> None:
    foreign = new_profile(store, uuid4())
    store.set_field(foreign.tenant_id, foreign.id, "x", 1)
    for pid in (uuid4(), foreign.id):
        with pytest.raises(NotFoundError):
            store.set_field(tenant, pid, "x", 2)
        with pytest.raises(NotFoundError):
            store.clear_field(tenant, pid, "x")
        assert store.get_field(tenant, pid, "x") is None
        assert store.get_fields(tenant, pid) == {}
        assert store.field_history(tenant, pid).items == []
    assert store.get_field(foreign.tenant_id, foreign.id, "x").field_value == 1  # type: ignore[union-attr]


# ---- assets -----------------------------------------------------------------------------


def test_assets(store: ProfileStore, tenant: UUID, clock: ManualClock) -> None:
    p = new_profile(store, tenant)
    made = []
    for i in range(5):
        made.append(asset(store, p, "image" if i % 2 else "document"))
        clock.advance(seconds=1)
    asset(store, new_profile(store, tenant))
    assert store.get_asset(tenant, made[0].id) == made[0]
    assert made[0].metadata == {"size": 10}
    got = collect(lambda **kw: store.list_assets(tenant, p.id, **kw), 2)
    assert [a.id for a in got] == [a.id for a in made]
    images = collect(lambda **kw: store.list_assets(tenant, p.id, asset_type="image", **kw), 1)
    assert [a.id for a in images] == [made[1].id, made[3].id]
    assert store.remove_asset(uuid4(), made[0].id) is False
    assert store.remove_asset(tenant, made[0].id) is True
    assert store.remove_asset(tenant, made[0].id) is False
    assert store.get_asset(tenant, made[0].id) is None
    with pytest.raises(DuplicateError):
        store.add_asset(made[1])
    assert store.list_assets(tenant, uuid4()).items == []


# ---- merge ----------------------------------------------------------------------------


def test_merge_moves_everything_to_the_survivor(
    store: ProfileStore, tenant: UUID, clock: ManualClock
) -> None:
    target, source = new_profile(store, tenant, "t"), new_profile(store, tenant, "s")
    link(store, target, "web", "t1")
    link(store, source, "sms", "s1")
    link(store, source, "email", "s2")
    store.set_field(tenant, target.id, "name", "Target Old")  # older: loses
    store.set_field(tenant, source.id, "phone", "+1")  # older: loses
    store.set_field(tenant, source.id, "city", "Rome")  # source only
    t_a = clock.advance(hours=1)
    store.set_field(tenant, source.id, "name", "Source New")
    store.set_field(tenant, target.id, "phone", "+2")
    store.set_field(tenant, source.id, "city", "Paris")
    a_src = asset(store, source)
    t_merge = clock.advance(hours=1)

    survivor = store.merge_profiles(tenant, source.id, target.id)
    assert survivor.id == target.id
    assert survivor.updated_at == t_merge

    raw = store.get_profile(tenant, source.id, follow_merges=False)
    assert raw is not None
    assert raw.merged_into_id == target.id
    assert store.get_profile(tenant, source.id) == survivor
    assert store.get_profile_by_external_id(tenant, "s") == survivor
    for channel, user in [("web", "t1"), ("sms", "s1"), ("email", "s2")]:
        assert store.resolve_identity(tenant, channel, user) == survivor
    assert len(store.list_identities(tenant, target.id).items) == 3
    assert store.list_identities(tenant, source.id) == store.list_identities(tenant, target.id)

    current = {k: v.field_value for k, v in store.get_fields(tenant, target.id).items()}
    assert current == {"name": "Source New", "phone": "+2", "city": "Paris"}
    assert store.get_fields(tenant, source.id) == store.get_fields(tenant, target.id)
    names = store.field_history(tenant, target.id, field_name="name").items
    assert [(n.field_value, n.valid_to) for n in names] == [
        ("Target Old", t_merge),
        ("Source New", None),
    ]
    assert len(store.field_history(tenant, target.id).items) == 6
    as_before = store.get_field(tenant, target.id, "name", as_of=t_a - timedelta(seconds=1))
    assert as_before is not None
    assert as_before.field_value == "Target Old"
    assert store.get_field(tenant, target.id, "name", as_of=t_a).field_value == "Source New"  # type: ignore[union-attr]

    assert [a.id for a in store.list_assets(tenant, target.id).items] == [a_src.id]
    assert store.get_asset(tenant, a_src.id).profile_id == target.id  # type: ignore[union-attr]
    assert [p.id for p in store.list_profiles(tenant).items] == [target.id]
    assert {p.id for p in store.list_profiles(tenant, include_merged=True).items} == {
        target.id,
        source.id,
    }


def test_merge_tie_keeps_the_target_value(store: ProfileStore, tenant: UUID) -> None:
    target, source = new_profile(store, tenant), new_profile(store, tenant)
    store.set_field(tenant, target.id, "x", "target")
    store.set_field(tenant, source.id, "x", "source")
    store.merge_profiles(tenant, source.id, target.id)
    assert store.get_field(tenant, target.id, "x").field_value == "target"  # type: ignore[union-attr]


def test_writes_to_a_merged_profile_reach_the_survivor(store: ProfileStore, tenant: UUID) -> None:
    target, source = new_profile(store, tenant), new_profile(store, tenant)
    store.merge_profiles(tenant, source.id, target.id)
    f = store.set_field(tenant, source.id, "x", 1)
    ident = link(store, source, "web", "late")
    a = asset(store, source)
    assert f.profile_id == ident.profile_id == a.profile_id == target.id
    assert store.set_external_id(tenant, source.id, "via-source").id == target.id


def test_merge_chains_lead_to_the_last_survivor(store: ProfileStore, tenant: UUID) -> None:
    a, b, c = (new_profile(store, tenant) for _ in range(3))
    link(store, a, "web", "a")
    store.merge_profiles(tenant, a.id, b.id)
    store.merge_profiles(tenant, b.id, c.id)
    assert store.get_profile(tenant, a.id) == store.get_profile(tenant, c.id)
    assert store.get_profile(tenant, a.id, follow_merges=False).merged_into_id == c.id  # type: ignore[union-attr]
    assert store.resolve_identity(tenant, "web", "a").id == c.id  # type: ignore[union-attr]
    again = store.merge_profiles(tenant, a.id, c.id)
    assert again.id == c.id
    with pytest.raises(InvalidInputError):
        store.merge_profiles(tenant, c.id, c.id)


def test_merge_of_missing_or_foreign_profiles_is_not_found(
    store: ProfileStore, tenant: UUID
) -> None:
    p = new_profile(store, tenant)
    link(store, p, "web", "p")
    foreign = new_profile(store, uuid4())
    for src, dst in [(p.id, uuid4()), (uuid4(), p.id), (p.id, foreign.id), (foreign.id, p.id)]:
        with pytest.raises(NotFoundError):
            store.merge_profiles(tenant, src, dst)
    assert store.get_profile(tenant, p.id) == p
    assert store.resolve_identity(tenant, "web", "p") == p


# ---- tenancy and bad input ----------------------------------------------------------------


def test_other_tenants_see_nothing(store: ProfileStore, tenant: UUID) -> None:
    p = new_profile(store, tenant, "ext")
    ident = link(store, p, "web", "u")
    store.set_field(tenant, p.id, "x", 1)
    a = asset(store, p)
    o = uuid4()
    assert store.get_profile(o, p.id) is None
    assert store.get_profile(o, p.id, follow_merges=False) is None
    assert store.get_profile_by_external_id(o, "ext") is None
    assert store.list_profiles(o).items == []
    assert store.get_identity(o, "web", "u") is None
    assert store.resolve_identity(o, "web", "u") is None
    assert store.list_identities(o, p.id).items == []
    assert store.unlink_identity(o, ident.id) is False
    assert store.get_field(o, p.id, "x") is None
    assert store.get_fields(o, p.id) == {}
    assert store.field_history(o, p.id).items == []
    assert store.get_asset(o, a.id) is None
    assert store.list_assets(o, p.id).items == []
    assert store.remove_asset(o, a.id) is False
    assert store.delete_profile(o, p.id) is False
    with pytest.raises(NotFoundError):
        store.set_external_id(o, p.id, "y")
    with pytest.raises(NotFoundError):
        store.set_field(o, p.id, "x", 2)
    with pytest.raises(NotFoundError):
        store.clear_field(o, p.id, "x")
    q = new_profile(store, o)
    with pytest.raises(NotFoundError):
        store.merge_profiles(o, p.id, q.id)
    assert store.get_field(tenant, p.id, "x").field_value == 1  # type: ignore[union-attr]
    assert store.resolve_identity(tenant, "web", "u") == p


def test_invalid_models_are_refused_and_nothing_is_written(
    store: ProfileStore, tenant: UUID
) -> None:
    p = new_profile(store, tenant)
    base_id = ChannelIdentity(tenant_id=tenant, profile_id=p.id, channel="web", channel_user_id="u")
    base_asset = ProfileAsset(
        tenant_id=tenant, profile_id=p.id, asset_type="t", asset_reference="r"
    )
    cases: list[tuple[Any, Any, str]] = [
        (
            store.create_profile,
            CustomerProfile(tenant_id=tenant).model_copy(update={"external_id": "e" * 501}),
            "external_id",
        ),
        (
            store.create_profile,
            CustomerProfile(tenant_id=tenant).model_copy(update={"external_id": ""}),
            "external_id",
        ),
        (
            store.create_profile,
            CustomerProfile(tenant_id=tenant, merged_into_id=p.id),
            "merged_into_id",
        ),
        (store.link_identity, base_id.model_copy(update={"channel": ""}), "channel"),
        (
            store.link_identity,
            base_id.model_copy(update={"channel_user_id": "u\x00"}),
            "channel_user_id",
        ),
        (
            store.add_asset,
            base_asset.model_copy(update={"asset_reference": "r" * 4001}),
            "asset_reference",
        ),
        (store.add_asset, base_asset.model_copy(update={"metadata": {"k": "\x00"}}), "metadata"),
        (store.add_asset, base_asset.model_copy(update={"asset_type": ""}), "asset_type"),
    ]
    for method, model, field in cases:
        with pytest.raises(InvalidInputError) as info:
            method(model)
        assert info.value.field == field
    assert [x.id for x in store.list_profiles(tenant, include_merged=True).items] == [p.id]
    assert store.list_identities(tenant, p.id).items == []
    assert store.list_assets(tenant, p.id).items == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"field_name": ""}, "field_name"),
        ({"field_name": "f" * 501}, "field_name"),
        ({"value": math.nan}, "field_value"),
        ({"value": {"a": [math.inf]}}, "field_value"),
        ({"value": "bad\x00"}, "field_value"),
        ({"value": {1, 2}}, "field_value"),
        ({"source": "RUMOUR"}, "source"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": math.nan}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"verified": "yes"}, "verified"),
        ({"tenant_id": "nope"}, "tenant_id"),
        ({"profile_id": "nope"}, "profile_id"),
    ],
)
def test_invalid_field_sets_are_refused(
    store: ProfileStore, tenant: UUID, kwargs: dict[str, Any], field: str
) -> None:
    p = new_profile(store, tenant)
    args: dict[str, Any] = {"tenant_id": tenant, "profile_id": p.id, "field_name": "f", "value": 1}
    args.update(kwargs)
    with pytest.raises(InvalidInputError) as info:
        store.set_field(**args)
    assert info.value.field == field
    assert store.field_history(tenant, p.id).items == []


NAIVE = datetime(2030, 1, 1)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s, t: s.get_profile("x", uuid4()), "tenant_id"),
        (lambda s, t: s.get_profile(t, "x"), "profile_id"),
        (lambda s, t: s.get_profile_by_external_id(t, ""), "external_id"),
        (lambda s, t: s.list_profiles(t, limit=0), "limit"),
        (lambda s, t: s.list_profiles(t, cursor="garbage!"), "cursor"),
        (lambda s, t: s.list_profiles(t, cursor="WyJ4IiwieSJd"), "cursor"),
        (lambda s, t: s.set_external_id(t, uuid4(), "e" * 501), "external_id"),
        (lambda s, t: s.delete_profile(t, 7), "profile_id"),
        (lambda s, t: s.merge_profiles(t, "a", uuid4()), "source_id"),
        (lambda s, t: s.merge_profiles(t, uuid4(), "b"), "target_id"),
        (lambda s, t: s.get_identity(t, "", "u"), "channel"),
        (lambda s, t: s.resolve_identity(t, "web", "u" * 501), "channel_user_id"),
        (lambda s, t: s.list_identities(t, uuid4(), limit=5000), "limit"),
        (lambda s, t: s.unlink_identity(t, "x"), "identity_id"),
        (lambda s, t: s.clear_field(t, uuid4(), ""), "field_name"),
        (lambda s, t: s.get_field(t, uuid4(), "f", as_of=NAIVE), "as_of"),
        (lambda s, t: s.get_fields(t, uuid4(), as_of="2030-01-01"), "as_of"),
        (lambda s, t: s.field_history(t, uuid4(), field_name=""), "field_name"),
        (lambda s, t: s.field_history(t, uuid4(), cursor="WyIyMDMwLTAxLTAxIiwieCJd"), "cursor"),
        (lambda s, t: s.get_asset(t, "x"), "asset_id"),
        (lambda s, t: s.list_assets(t, uuid4(), asset_type=""), "asset_type"),
        (lambda s, t: s.remove_asset(t, None), "asset_id"),
    ],
)
def test_bad_arguments_are_invalid_input(
    store: ProfileStore, tenant: UUID, call: Any, field: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        call(store, tenant)
    assert info.value.field == field


def test_timestamps_are_utc(store: ProfileStore, tenant: UUID, clock: ManualClock) -> None:
    p = new_profile(store, tenant)
    f = store.set_field(tenant, p.id, "x", 1)
    assert f.valid_from.tzinfo is not None
    assert f.valid_from.utcoffset() == timedelta(0)
    stored = store.get_profile(tenant, p.id)
    assert stored is not None
    assert stored.created_at == clock()
    assert stored.created_at.tzinfo == UTC

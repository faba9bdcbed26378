"""The MemoryStore contract: every backend must pass every test here."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest

from stores.common.clock import ManualClock
from stores.common.pagination import Page
from stores.errors import DuplicateError, InvalidInputError, NotFoundError
from stores.memory import (
    Entity,
    Episode,
    EpisodeType,
    InMemoryMemoryStore,
    MemoryStore,
    Relationship,
    RelationshipDirection,
)
from tests import services

DIMS = 1536
T = TypeVar("T")


@pytest.fixture(scope="module")
def memory_engine(pg_server: str, pg_template: str) -> Iterator[Any]:
    """One migrated database shared by this module's PostgreSQL tests."""
    from stores.postgres.engine import create_engine

    name = services.unique_name("hearth_mem")
    url = services.create_database(pg_server, name, template=pg_template)
    engine = create_engine(url, pool_size=5, max_overflow=5)
    try:
        yield engine
    finally:
        engine.dispose()
        services.drop_database(pg_server, name)


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(request: pytest.FixtureRequest, clock: ManualClock) -> MemoryStore:
    if request.param == "memory":
        return InMemoryMemoryStore(dimensions=DIMS, clock=clock)
    from stores.memory import PostgresMemoryStore

    engine = request.getfixturevalue("memory_engine")
    pg_store: MemoryStore = PostgresMemoryStore(engine, dimensions=DIMS, clock=clock)
    return pg_store


@pytest.fixture
def tenant() -> UUID:
    return uuid4()


@pytest.fixture
def agent() -> UUID:
    return uuid4()


def vec(*components: float) -> list[float]:
    return [*components, *([0.0] * (DIMS - len(components)))]


def all_pages(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    items: list[T] = []
    cursor: str | None = None
    for _ in range(1000):
        page = fetch(cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items
    raise AssertionError("pagination never ended")


def episode(tenant: UUID, agent: UUID, **kw: Any) -> Episode:
    base: dict[str, Any] = {"tenant_id": tenant, "agent_id": agent, "content": "hello"}
    return Episode(**(base | kw))


def entity(tenant: UUID, agent: UUID, name: str, **kw: Any) -> Entity:
    base: dict[str, Any] = {
        "tenant_id": tenant,
        "agent_id": agent,
        "name": name,
        "entity_type": "person",
    }
    return Entity(**(base | kw))


def test_episode_lifecycle(
    store: MemoryStore, tenant: UUID, agent: UUID, clock: ManualClock
) -> None:
    made = store.add_episode(
        episode(
            tenant,
            agent,
            content="likes tea",
            episode_type=EpisodeType.FACT,
            importance=0.9,
            metadata={"source": ["chat", 1]},
            embedding=vec(1.0),
            embedding_model="m",
        )
    )
    assert made.recorded_at == clock()
    assert made.valid_from == clock()
    got = store.get_episode(tenant, made.id)
    assert got == made
    assert got is not None
    assert got.metadata == {"source": ["chat", 1]}
    assert store.get_episode(uuid4(), made.id) is None

    clock.advance(minutes=1)
    updated = store.update_episode(made.model_copy(update={"importance": 0.2}))
    assert updated.importance == 0.2
    assert updated.recorded_at == made.recorded_at
    assert updated.embedding_model == "m"
    edited = store.update_episode(updated.model_copy(update={"content": "likes coffee"}))
    assert edited.embedding is None
    assert edited.embedding_model is None
    with pytest.raises(InvalidInputError):
        store.update_episode(edited.model_copy(update={"agent_id": uuid4()}))
    with pytest.raises(NotFoundError):
        store.update_episode(edited.model_copy(update={"tenant_id": uuid4()}))

    clock.advance(minutes=1)
    ended = store.invalidate_episode(tenant, made.id)
    assert ended.valid_to == clock()
    with pytest.raises(InvalidInputError):
        store.invalidate_episode(tenant, made.id, at=made.valid_from - timedelta(seconds=1))
    with pytest.raises(NotFoundError):
        store.invalidate_episode(uuid4(), made.id)
    assert store.delete_episode(uuid4(), made.id) is False
    assert store.delete_episode(tenant, made.id) is True
    assert store.get_episode(tenant, made.id) is None
    assert store.delete_episode(tenant, made.id) is False


def test_add_episodes_is_all_or_nothing(store: MemoryStore, tenant: UUID, agent: UUID) -> None:
    existing = store.add_episode(episode(tenant, agent))
    batch = [episode(tenant, agent, content=f"e{i}") for i in range(3)]
    with pytest.raises(DuplicateError):
        store.add_episodes([*batch, existing])
    with pytest.raises(InvalidInputError):
        store.add_episodes([*batch, episode(tenant, agent, embedding=vec(math.nan))])
    assert [e.id for e in store.list_episodes(tenant, agent).items] == [existing.id]
    added = store.add_episodes(batch)
    assert len(added) == 3
    assert len(store.list_episodes(tenant, agent).items) == 4


def test_list_episodes_filters_and_pages_newest_first(
    store: MemoryStore, tenant: UUID, agent: UUID, clock: ManualClock
) -> None:
    customer, session = uuid4(), uuid4()
    start = clock()
    e1 = store.add_episode(episode(tenant, agent, customer_profile_id=customer, group_id="g"))
    clock.advance(minutes=1)
    e2 = store.add_episode(
        episode(
            tenant,
            agent,
            session_id=session,
            episode_type=EpisodeType.SUMMARY,
            valid_to=clock() + timedelta(minutes=5),
        )
    )
    clock.advance(minutes=1)
    e3 = store.add_episode(
        episode(
            tenant,
            agent,
            customer_profile_id=customer,
            session_id=session,
            episode_type=EpisodeType.EVENT,
        )
    )
    store.add_episode(episode(tenant, uuid4()))  # another agent
    store.add_episode(episode(uuid4(), agent))  # another tenant

    def ids(**kw: Any) -> list[UUID]:
        return [e.id for e in store.list_episodes(tenant, agent, **kw).items]

    assert ids() == [e3.id, e2.id, e1.id]
    assert ids(customer_profile_id=customer) == [e3.id, e1.id]
    assert ids(session_id=str(session)) == [e3.id, e2.id]
    assert ids(group_id="g") == [e1.id]
    assert ids(episode_types=["SUMMARY", EpisodeType.EVENT]) == [e3.id, e2.id]
    assert ids(valid_at=start) == [e1.id]
    assert ids(valid_at=start + timedelta(minutes=1, seconds=30)) == [e2.id, e1.id]
    assert ids(valid_at=start + timedelta(minutes=10)) == [e3.id, e1.id]
    paged = all_pages(lambda c: store.list_episodes(tenant, agent, limit=2, cursor=c))
    assert [e.id for e in paged] == [e3.id, e2.id, e1.id]
    assert store.list_episodes(tenant, agent, customer_profile_id=uuid4()).items == []


@pytest.mark.parametrize(
    "bad",
    [
        {"episode_types": ["NOPE"]},
        {"episode_types": "FACT"},
        {"valid_at": datetime(2030, 1, 1)},
        {"customer_profile_id": "nope"},
        {"cursor": "%%%"},
        {"limit": 0},
        {"min_score": math.nan},
    ],
)
def test_bad_episode_filters_are_invalid_input(
    store: MemoryStore, tenant: UUID, agent: UUID, bad: dict[str, Any]
) -> None:
    if "min_score" not in bad:
        with pytest.raises(InvalidInputError):
            store.list_episodes(tenant, agent, **bad)
    if "cursor" not in bad:
        with pytest.raises(InvalidInputError):
            store.vector_search_episodes(tenant, agent, vec(1.0), **bad)


@pytest.mark.parametrize(
    "embedding",
    [vec(1.0)[:100], vec(math.nan), vec(1.0, math.inf), vec(), vec(1.0, -1e39), vec(1e-50)],
    ids=["short", "nan", "inf", "zero", "beyond-float32", "zero-in-float32"],
)
def test_bad_episode_embeddings_are_rejected(
    store: MemoryStore, tenant: UUID, agent: UUID, embedding: list[float]
) -> None:
    with pytest.raises(InvalidInputError):
        store.add_episode(episode(tenant, agent, embedding=embedding))
    with pytest.raises(InvalidInputError):
        store.vector_search_episodes(tenant, agent, embedding)
    assert store.list_episodes(tenant, agent).items == []


def test_oversized_memory_input_is_rejected(store: MemoryStore, tenant: UUID, agent: UUID) -> None:
    with pytest.raises(InvalidInputError):
        store.add_episode(episode(tenant, agent, content="x" * 100_001))
    with pytest.raises(InvalidInputError):
        store.add_episode(episode(tenant, agent, metadata={"x": math.inf}))
    with pytest.raises(InvalidInputError):
        store.add_entity(entity(tenant, agent, "n" * 201))
    with pytest.raises(InvalidInputError):
        store.get_episode("tenant?", uuid4())
    assert store.list_episodes(tenant, agent).items == []
    assert store.list_entities(tenant, agent).items == []


def test_vector_search_episodes_with_filters(
    store: MemoryStore, tenant: UUID, agent: UUID, clock: ManualClock
) -> None:
    customer, session = uuid4(), uuid4()
    t0 = clock()
    a = store.add_episode(
        episode(
            tenant,
            agent,
            embedding=vec(1.0),
            customer_profile_id=customer,
            episode_type=EpisodeType.FACT,
        )
    )
    b = store.add_episode(episode(tenant, agent, embedding=vec(1.0, 0.5), session_id=session))
    c = store.add_episode(
        episode(
            tenant,
            agent,
            embedding=vec(1.0, 1.0),
            customer_profile_id=customer,
            session_id=session,
            valid_to=t0 + timedelta(minutes=1),
        )
    )
    store.add_episode(episode(tenant, agent))  # no embedding
    store.add_episode(episode(tenant, uuid4(), embedding=vec(1.0)))
    store.add_episode(episode(uuid4(), agent, embedding=vec(1.0)))

    def ids(**kw: Any) -> list[UUID]:
        return [e.id for e, _ in store.vector_search_episodes(tenant, agent, vec(1.0), **kw)]

    assert ids() == [a.id, b.id, c.id]
    results = store.vector_search_episodes(tenant, agent, vec(1.0))
    assert results[0][1] == pytest.approx(1.0, abs=1e-5)
    assert results[1][1] == pytest.approx(1 / math.sqrt(1.25), abs=1e-5)
    assert ids(customer_profile_id=customer) == [a.id, c.id]
    assert ids(session_id=session) == [b.id, c.id]
    assert ids(episode_types=["FACT"]) == [a.id]
    assert ids(episode_types=[]) == []
    assert ids(valid_at=t0 + timedelta(minutes=2)) == [a.id, b.id]
    assert ids(min_score=0.8) == [a.id, b.id]
    assert ids(limit=1) == [a.id]
    assert store.vector_search_episodes(tenant, uuid4(), vec(1.0)) == []


def test_episode_embedding_backfill(store: MemoryStore, tenant: UUID, agent: UUID) -> None:
    bare = store.add_episode(episode(tenant, agent, content="a"))
    old = store.add_episode(
        episode(tenant, agent, content="b", embedding=vec(1.0), embedding_model="old")
    )
    done = store.add_episode(
        episode(tenant, agent, content="c", embedding=vec(1.0), embedding_model="new")
    )
    other = store.add_episode(episode(uuid4(), agent, content="d"))
    listed = all_pages(lambda c: store.list_episodes_needing_embedding("new", limit=1, cursor=c))
    ids = [e.id for e in listed]
    assert {bare.id, old.id, other.id} <= set(ids)
    assert done.id not in ids
    assert len(ids) == len(set(ids))
    assert (
        store.set_episode_embedding(tenant, bare.id, vec(0.0, 1.0), "new", source_text="changed")
        is False
    )
    assert (
        store.set_episode_embedding(tenant, bare.id, vec(0.0, 1.0), "new", source_text="a") is True
    )
    assert store.set_episode_embedding(uuid4(), old.id, vec(0.0, 1.0), "new") is False
    listed = all_pages(lambda c: store.list_episodes_needing_embedding("new", cursor=c))
    assert bare.id not in {e.id for e in listed}
    found = store.vector_search_episodes(tenant, agent, vec(0.0, 1.0), limit=1)
    assert found[0][0].id == bare.id


def test_delete_customer_memory(store: MemoryStore, tenant: UUID, agent: UUID) -> None:
    customer = uuid4()
    store.add_episode(episode(tenant, agent, customer_profile_id=customer))
    keep = store.add_episode(episode(tenant, agent))
    person = store.add_entity(entity(tenant, agent, "Ann", customer_profile_id=customer))
    other = store.add_entity(entity(tenant, agent, "Bob"))
    rel = store.add_relationship(
        Relationship(
            tenant_id=tenant,
            source_entity_id=other.id,
            target_entity_id=person.id,
            relationship_type="knows",
        )
    )
    assert store.delete_customer_memory(uuid4(), customer) == 0
    assert store.delete_customer_memory(tenant, customer) == 2
    assert [e.id for e in store.list_episodes(tenant, agent).items] == [keep.id]
    assert store.get_entity(tenant, person.id) is None
    assert store.get_relationship(tenant, rel.id) is None
    assert store.get_entity(tenant, other.id) == other


def test_entity_lifecycle(
    store: MemoryStore, tenant: UUID, agent: UUID, clock: ManualClock
) -> None:
    ann = store.add_entity(
        entity(tenant, agent, "Ann", canonical_name="ann", attributes={"age": 40})
    )
    store.add_entity(entity(tenant, agent, "Acme", entity_type="company"))
    assert store.get_entity(tenant, ann.id) == ann
    assert store.get_entity(uuid4(), ann.id) is None
    with pytest.raises(DuplicateError):
        store.add_entity(ann)
    assert [e.id for e in store.list_entities(tenant, agent, entity_type="person").items] == [
        ann.id
    ]
    assert [e.id for e in store.list_entities(tenant, agent, canonical_name="ann").items] == [
        ann.id
    ]
    assert len(all_pages(lambda c: store.list_entities(tenant, agent, limit=1, cursor=c))) == 2
    clock.advance(seconds=3)
    updated = store.update_entity(ann.model_copy(update={"attributes": {"age": 41}}))
    assert updated.attributes == {"age": 41}
    assert updated.updated_at == clock()
    assert updated.created_at == ann.created_at
    with pytest.raises(InvalidInputError):
        store.update_entity(ann.model_copy(update={"agent_id": uuid4()}))
    assert store.delete_entity(tenant, ann.id) is True
    assert store.delete_entity(tenant, ann.id) is False
    with pytest.raises(NotFoundError):
        store.update_entity(ann)


@pytest.fixture
def graph(store: MemoryStore, tenant: UUID, agent: UUID, clock: ManualClock) -> dict[str, Any]:
    """ann -knows-> bob -works_at-> acme <-works_at- cid; ann -likes-> tea."""
    names = ["ann", "bob", "acme", "cid", "tea"]
    ents = {n: store.add_entity(entity(tenant, agent, n)) for n in names}
    rels = {}
    for src, typ, dst in [
        ("ann", "knows", "bob"),
        ("bob", "works_at", "acme"),
        ("cid", "works_at", "acme"),
        ("ann", "likes", "tea"),
    ]:
        clock.advance(seconds=1)
        rels[(src, dst)] = store.add_relationship(
            Relationship(
                tenant_id=tenant,
                source_entity_id=ents[src].id,
                target_entity_id=ents[dst].id,
                relationship_type=typ,
                confidence=0.8,
            )
        )
    return {"e": ents, "r": rels}


def test_relationships_in_either_direction(
    store: MemoryStore, tenant: UUID, graph: dict[str, Any], clock: ManualClock
) -> None:
    e, r = graph["e"], graph["r"]

    def rels(name: str, **kw: Any) -> list[UUID]:
        return [x.id for x in store.list_relationships(tenant, e[name].id, **kw).items]

    assert rels("bob") == [r[("ann", "bob")].id, r[("bob", "acme")].id]
    assert rels("bob", direction="OUTGOING") == [r[("bob", "acme")].id]
    assert rels("bob", direction=RelationshipDirection.INCOMING) == [r[("ann", "bob")].id]
    assert rels("acme", relationship_type="works_at") == [
        r[("bob", "acme")].id,
        r[("cid", "acme")].id,
    ]
    assert rels("acme", direction="OUTGOING") == []
    assert rels("ann", limit=1) == [r[("ann", "bob")].id]
    assert (
        len(all_pages(lambda c: store.list_relationships(tenant, e["ann"].id, limit=1, cursor=c)))
        == 2
    )
    assert store.list_relationships(uuid4(), e["bob"].id).items == []
    with pytest.raises(InvalidInputError):
        store.list_relationships(tenant, e["bob"].id, direction="SIDEWAYS")

    clock.advance(seconds=10)
    ended = store.update_relationship(r[("ann", "tea")].model_copy(update={"valid_to": clock()}))
    assert ended.valid_to == clock()
    assert rels("ann", valid_at=clock()) == [r[("ann", "bob")].id]
    with pytest.raises(InvalidInputError):
        store.update_relationship(ended.model_copy(update={"target_entity_id": e["bob"].id}))


def test_relationship_keys_and_references(
    store: MemoryStore, tenant: UUID, agent: UUID, graph: dict[str, Any]
) -> None:
    e, r = graph["e"], graph["r"]
    existing = r[("ann", "bob")]
    with pytest.raises(DuplicateError):
        store.add_relationship(existing.model_copy(update={"id": uuid4()}))
    later = store.add_relationship(
        existing.model_copy(
            update={"id": uuid4(), "valid_from": existing.valid_from + timedelta(days=1)}
        )
    )
    assert later.valid_from != existing.valid_from
    foreign = store.add_entity(entity(uuid4(), agent, "stranger"))
    with pytest.raises(NotFoundError):
        store.add_relationship(
            Relationship(
                tenant_id=tenant,
                source_entity_id=e["ann"].id,
                target_entity_id=foreign.id,
                relationship_type="knows",
            )
        )
    with pytest.raises(NotFoundError):
        store.add_relationship(
            Relationship(
                tenant_id=tenant,
                source_entity_id=uuid4(),
                target_entity_id=e["ann"].id,
                relationship_type="knows",
            )
        )
    assert store.get_relationship(uuid4(), existing.id) is None
    assert store.delete_relationship(tenant, existing.id) is True
    assert store.get_relationship(tenant, existing.id) is None
    assert store.delete_entity(tenant, e["acme"].id) is True
    assert store.get_relationship(tenant, r[("bob", "acme")].id) is None
    assert store.get_relationship(tenant, r[("ann", "tea")].id) is not None


def test_traverse_breadth_first_in_either_direction(
    store: MemoryStore, tenant: UUID, graph: dict[str, Any]
) -> None:
    e = graph["e"]
    name = {v.id: k for k, v in e.items()}

    def walk(start: str, **kw: Any) -> list[tuple[str, int]]:
        return [(name[n.entity.id], n.depth) for n in store.traverse(tenant, e[start].id, **kw)]

    assert walk("ann", max_depth=1) == [("bob", 1), ("tea", 1)]
    assert walk("ann") == [("bob", 1), ("tea", 1), ("acme", 2)]
    assert walk("ann", max_depth=3) == [("bob", 1), ("tea", 1), ("acme", 2), ("cid", 3)]
    assert walk("acme", direction="INCOMING") == [("bob", 1), ("cid", 1), ("ann", 2)]
    assert walk("acme", direction="OUTGOING") == []
    assert walk("ann", relationship_types=["knows", "works_at"], max_depth=5) == [
        ("bob", 1),
        ("acme", 2),
        ("cid", 3),
    ]
    assert walk("ann", max_depth=3, limit=2) == [("bob", 1), ("tea", 1)]
    hop = store.traverse(tenant, e["ann"].id, max_depth=2)[2]
    assert hop.relationship.id == graph["r"][("bob", "acme")].id
    assert store.traverse(uuid4(), e["ann"].id) == []
    with pytest.raises(InvalidInputError):
        store.traverse(tenant, e["ann"].id, max_depth=0)
    with pytest.raises(InvalidInputError):
        store.traverse(tenant, e["ann"].id, max_depth=6)


def test_ids_of_another_tenant_behave_as_missing(
    store: MemoryStore, tenant: UUID, agent: UUID
) -> None:
    stranger = uuid4()
    customer = uuid4()
    ep = store.add_episode(episode(tenant, agent, customer_profile_id=customer, embedding=vec(1.0)))
    ann = store.add_entity(entity(tenant, agent, "Ann", customer_profile_id=customer))
    bob = store.add_entity(entity(tenant, agent, "Bob"))
    rel = store.add_relationship(
        Relationship(
            tenant_id=tenant,
            source_entity_id=ann.id,
            target_entity_id=bob.id,
            relationship_type="knows",
        )
    )
    assert store.get_episode(stranger, ep.id) is None
    assert store.list_episodes(stranger, agent).items == []
    assert store.vector_search_episodes(stranger, agent, vec(1.0)) == []
    assert store.set_episode_embedding(stranger, ep.id, vec(0.0, 1.0), "m") is False
    assert store.delete_episode(stranger, ep.id) is False
    assert store.delete_customer_memory(stranger, customer) == 0
    with pytest.raises(NotFoundError):
        store.update_episode(ep.model_copy(update={"tenant_id": stranger, "content": "x"}))
    with pytest.raises(NotFoundError):
        store.invalidate_episode(stranger, ep.id)
    assert store.get_entity(stranger, ann.id) is None
    assert store.list_entities(stranger, agent).items == []
    assert store.delete_entity(stranger, ann.id) is False
    with pytest.raises(NotFoundError):
        store.update_entity(ann.model_copy(update={"tenant_id": stranger, "name": "x"}))
    with pytest.raises(NotFoundError):
        store.add_relationship(
            Relationship(
                tenant_id=stranger,
                source_entity_id=ann.id,
                target_entity_id=bob.id,
                relationship_type="knows",
            )
        )
    assert store.get_relationship(stranger, rel.id) is None
    assert store.list_relationships(stranger, ann.id).items == []
    assert store.traverse(stranger, ann.id) == []
    assert store.delete_relationship(stranger, rel.id) is False
    with pytest.raises(NotFoundError):
        store.update_relationship(rel.model_copy(update={"tenant_id": stranger}))
    assert store.get_episode(tenant, ep.id) == ep
    assert store.get_entity(tenant, ann.id) == ann
    assert store.get_relationship(tenant, rel.id) == rel


def test_nul_in_source_text_is_invalid_input(store: MemoryStore, tenant: UUID, agent: UUID) -> None:
    made = store.add_episode(episode(tenant, agent))
    with pytest.raises(InvalidInputError):
        store.set_episode_embedding(tenant, made.id, vec(1.0), "m", source_text="a\x00")
    assert store.get_episode(tenant, made.id) == made


def test_an_identical_vector_scores_exactly_one(
    store: MemoryStore, tenant: UUID, agent: UUID
) -> None:
    query = vec(0.1, 0.2, 0.7, 0.3)
    made = store.add_episode(episode(tenant, agent, embedding=query))
    found = store.vector_search_episodes(tenant, agent, query, min_score=1.0)
    assert [(e.id, s) for e, s in found] == [(made.id, 1.0)]


def test_vector_search_ties_are_ordered_by_id(
    store: MemoryStore, tenant: UUID, agent: UUID
) -> None:
    made = [store.add_episode(episode(tenant, agent, embedding=vec(1.0, 1.0))) for _ in range(4)]
    found = store.vector_search_episodes(tenant, agent, vec(2.0, 2.0), limit=3)
    assert [e.id for e, _ in found] == sorted(e.id for e in made)[:3]


def test_type_filters_that_are_not_lists_are_invalid_input(
    store: MemoryStore, tenant: UUID, agent: UUID
) -> None:
    number: Any = 5
    with pytest.raises(InvalidInputError):
        store.list_episodes(tenant, agent, episode_types=number)
    with pytest.raises(InvalidInputError):
        store.traverse(tenant, uuid4(), relationship_types=number)


def test_search_hits_carry_their_embeddings_only_when_asked(
    store: MemoryStore, tenant: UUID, agent: UUID
) -> None:
    added = store.add_episode(episode(tenant, agent, embedding=vec(1.0, 3.0)))
    plain = store.vector_search_episodes(tenant, agent, vec(1.0))
    assert [(e.id, e.embedding) for e, _ in plain] == [(added.id, None)]
    full = store.vector_search_episodes(tenant, agent, vec(1.0), include_embeddings=True)
    assert [(e.id, e.embedding) for e, _ in full] == [(added.id, added.embedding)]
    stored = store.get_episode(tenant, added.id)
    assert stored is not None
    assert stored.embedding == added.embedding

"""The in-memory MemoryStore: the reference behaviour every other backend must match."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from stores.common.clock import Clock, utc_now
from stores.common.validation import DEFAULT_EMBEDDING_DIMENSIONS
from stores.common.vectors import cosine_similarity, found
from stores.errors import DuplicateError, NotFoundError
from stores.memory.graph import Graph
from stores.memory.models import Entity, Episode, Relationship
from stores.memory.query import Listing, M
from stores.memory.store import MemoryStore


class InMemoryMemoryStore(MemoryStore):
    """A thread-safe MemoryStore held in process memory (one lock around every call)."""

    def __init__(
        self, *, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS, clock: Clock = utc_now
    ) -> None:
        self._dimensions = dimensions
        self._clock = clock
        self._lock = threading.RLock()
        self._episodes: dict[UUID, Episode] = {}
        self._entities: dict[UUID, Entity] = {}
        self._relationships: dict[UUID, Relationship] = {}

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _table(self, kind: type[M]) -> dict[UUID, M]:
        tables: dict[type[Any], dict[UUID, Any]] = {
            Episode: self._episodes,
            Entity: self._entities,
            Relationship: self._relationships,
        }
        return tables[kind]

    def _stored(self, kind: type[M], tenant_id: UUID, item_id: UUID) -> M | None:
        item = self._table(kind).get(item_id)
        return item if item is not None and item.tenant_id == tenant_id else None

    def _insert_episodes(self, episodes: list[Episode]) -> list[Episode]:
        with self._lock:
            ids = [item.id for item in episodes]
            if len(set(ids)) != len(ids) or any(i in self._episodes for i in ids):
                raise DuplicateError("an episode with one of these ids already exists")
            for item in episodes:
                self._episodes[item.id] = item
            return [item.model_copy(deep=True) for item in episodes]

    def _insert_entity(self, entity: Entity) -> Entity:
        with self._lock:
            if entity.id in self._entities:
                raise DuplicateError(f"entity {entity.id} already exists")
            self._entities[entity.id] = entity
            return entity.model_copy(deep=True)

    def _insert_relationship(self, relationship: Relationship) -> Relationship:
        with self._lock:
            for end in (relationship.source_entity_id, relationship.target_entity_id):
                if self._stored(Entity, relationship.tenant_id, end) is None:
                    raise NotFoundError(f"entity {end} not found")
            if relationship.id in self._relationships or self._key_taken(relationship):
                raise DuplicateError("this relationship already exists")
            self._relationships[relationship.id] = relationship
            return relationship.model_copy(deep=True)

    def _key_taken(self, rel: Relationship) -> bool:
        return any(
            r.id != rel.id
            and r.tenant_id == rel.tenant_id
            and r.source_entity_id == rel.source_entity_id
            and r.target_entity_id == rel.target_entity_id
            and r.relationship_type == rel.relationship_type
            and r.valid_from == rel.valid_from
            for r in self._relationships.values()
        )

    def _get(self, kind: type[M], tenant_id: UUID, item_id: UUID) -> M | None:
        with self._lock:
            item = self._stored(kind, tenant_id, item_id)
            return None if item is None else item.model_copy(deep=True)

    def _replace(
        self, kind: type[M], tenant_id: UUID, item_id: UUID, change: Callable[[M], M]
    ) -> M:
        with self._lock:
            old = self._stored(kind, tenant_id, item_id)
            if old is None:
                raise NotFoundError(f"{kind.__name__.lower()} {item_id} not found")
            new = change(old)
            if isinstance(new, Relationship) and self._key_taken(new):
                raise DuplicateError("this relationship already exists")
            self._table(kind)[item_id] = new
            return new.model_copy(deep=True)

    def _delete(self, kind: type[M], tenant_id: UUID, item_id: UUID) -> bool:
        with self._lock:
            if self._stored(kind, tenant_id, item_id) is None:
                return False
            if kind is Entity:
                self._drop_entities({item_id})
            else:
                del self._table(kind)[item_id]
            return True

    def _drop_entities(self, entity_ids: set[UUID]) -> None:
        for rid in [
            r.id
            for r in self._relationships.values()
            if r.source_entity_id in entity_ids or r.target_entity_id in entity_ids
        ]:
            del self._relationships[rid]
        for eid in entity_ids:
            del self._entities[eid]

    def _delete_customer(self, tenant_id: UUID, customer_profile_id: UUID) -> int:
        def owned(item: Episode | Entity) -> bool:
            return item.tenant_id == tenant_id and item.customer_profile_id == customer_profile_id

        with self._lock:
            episodes = [e.id for e in self._episodes.values() if owned(e)]
            entities = {e.id for e in self._entities.values() if owned(e)}
            for eid in episodes:
                del self._episodes[eid]
            self._drop_entities(entities)
            return len(episodes) + len(entities)

    def _matching(self, listing: Listing[M]) -> list[M]:
        rows = [item for item in self._table(listing.kind).values() if listing.matches(item)]
        return sorted(rows, key=listing.key, reverse=listing.descending)

    def _list(self, listing: Listing[M]) -> list[M]:
        with self._lock:
            rows = self._matching(listing)[: listing.limit + 1]
            return [item.model_copy(deep=True) for item in rows]

    def _search(
        self, listing: Listing[Episode], vector: list[float], limit: int, embeddings: bool
    ) -> list[tuple[Episode, float]]:
        with self._lock:
            scored = [
                (e, cosine_similarity(vector, e.embedding))
                for e in self._table(Episode).values()
                if e.embedding is not None and listing.matches(e)
            ]
            scored.sort(key=lambda pair: (-pair[1], pair[0].id))
            return [(found(e, embeddings), s) for e, s in scored[:limit]]

    def _set_embedding(
        self, tenant: UUID, eid: UUID, vector: list[float], model: str, text: str | None
    ) -> bool:
        with self._lock:
            old = self._stored(Episode, tenant, eid)
            if old is None or (text is not None and old.content != text):
                return False
            self._episodes[eid] = old.model_copy(
                update={"embedding": vector, "embedding_model": model}
            )
            return True

    @contextmanager
    def _graph(self, tenant_id: UUID) -> Iterator[Graph]:
        def entities(ids: Sequence[UUID]) -> dict[UUID, Entity]:
            return {
                i: e.model_copy(deep=True)
                for i in ids
                if (e := self._stored(Entity, tenant_id, i)) is not None
            }

        def relationships(listing: Listing[Relationship]) -> list[Relationship]:
            return [r.model_copy(deep=True) for r in self._matching(listing)]

        with self._lock:
            yield Graph(relationships, entities)

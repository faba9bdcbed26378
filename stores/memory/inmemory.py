"""The in-memory MemoryStore: the reference behaviour every other backend must match."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from stores.common.clock import Clock, utc_now
from stores.common.keyset import as_datetime, as_uuid, paginate
from stores.common.pagination import Page
from stores.common.validation import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    check_limit,
    check_text,
    parse_enum,
    parse_id,
    validate_embedding,
)
from stores.common.vectors import (
    check_min_score,
    checked_query,
    cosine_similarity,
    float32_list,
    found,
)
from stores.errors import DuplicateError, InvalidInputError, NotFoundError
from stores.memory import checks
from stores.memory.graph import check_depth, next_hop, traversal_types
from stores.memory.models import (
    Entity,
    Episode,
    EpisodeType,
    Neighbor,
    Relationship,
    RelationshipDirection,
    valid_at,
)
from stores.memory.store import DEFAULT_PAGE_SIZE, MemoryStore

_CREATED = (as_datetime, as_uuid)


def _created_key(item: Entity | Relationship) -> tuple[Any, ...]:
    return (item.created_at, item.id)


def _recorded_key(item: Episode) -> tuple[Any, ...]:
    return (item.recorded_at, item.id)


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

    def _prepared_episode(self, episode: Episode) -> Episode:
        item = checks.checked_episode(episode, self.dimensions)
        now = self._clock()
        return item.model_copy(
            update={
                "recorded_at": now,
                "valid_from": item.valid_from or now,
                "embedding": float32_list(item.embedding),
            }
        )

    def add_episode(self, episode: Episode) -> Episode:
        return self.add_episodes([episode])[0]

    def add_episodes(self, episodes: Sequence[Episode]) -> list[Episode]:
        items = [self._prepared_episode(e) for e in episodes]
        for item in items:
            checks.check_interval(item.valid_from, item.valid_to)
        with self._lock:
            ids = [item.id for item in items]
            if len(set(ids)) != len(ids) or any(i in self._episodes for i in ids):
                raise DuplicateError("an episode with one of these ids already exists")
            for item in items:
                self._episodes[item.id] = item
            return [item.model_copy(deep=True) for item in items]

    def _episode(self, tenant_id: UUID, episode_id: UUID) -> Episode | None:
        item = self._episodes.get(episode_id)
        return item if item is not None and item.tenant_id == tenant_id else None

    def get_episode(self, tenant_id: UUID | str, episode_id: UUID | str) -> Episode | None:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        with self._lock:
            item = self._episode(tid, eid)
            return None if item is None else item.model_copy(deep=True)

    def _episode_rows(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        customer_profile_id: UUID | str | None,
        session_id: UUID | str | None,
        group_id: str | None,
        episode_types: Sequence[EpisodeType | str] | None,
        when: datetime | None,
    ) -> list[Episode]:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        cid = checks.optional_id(customer_profile_id, "customer_profile_id")
        sid = checks.optional_id(session_id, "session_id")
        check_text(group_id, "group_id")
        types = checks.episode_types(episode_types)
        checks.checked_when(when, "valid_at")
        return [
            e
            for e in self._episodes.values()
            if e.tenant_id == tid
            and e.agent_id == aid
            and (cid is None or e.customer_profile_id == cid)
            and (sid is None or e.session_id == sid)
            and (group_id is None or e.group_id == group_id)
            and (types is None or e.episode_type in types)
            and (when is None or valid_at(e.valid_from, e.valid_to, when))
        ]

    def list_episodes(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        customer_profile_id: UUID | str | None = None,
        session_id: UUID | str | None = None,
        group_id: str | None = None,
        episode_types: Sequence[EpisodeType | str] | None = None,
        valid_at: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Episode]:
        check_limit(limit)
        with self._lock:
            rows = [
                e.model_copy(deep=True)
                for e in self._episode_rows(
                    tenant_id,
                    agent_id,
                    customer_profile_id,
                    session_id,
                    group_id,
                    episode_types,
                    valid_at,
                )
            ]
        return paginate(
            rows, _recorded_key, limit=limit, cursor=cursor, kinds=_CREATED, descending=True
        )

    def update_episode(self, episode: Episode) -> Episode:
        item = checks.checked_episode(episode, self.dimensions)
        with self._lock:
            old = self._episode(item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"episode {item.id} not found")
            if item.agent_id != old.agent_id:
                raise InvalidInputError("agent_id cannot change", field="agent_id")
            update: dict[str, Any] = {
                "recorded_at": old.recorded_at,
                "valid_from": item.valid_from or old.valid_from,
                "embedding": float32_list(item.embedding),
            }
            if old.content != item.content and checks.same_vector(item.embedding, old.embedding):
                update.update(embedding=None, embedding_model=None)
            stored = item.model_copy(update=update)
            checks.check_interval(stored.valid_from, stored.valid_to)
            self._episodes[item.id] = stored
            return stored.model_copy(deep=True)

    def invalidate_episode(
        self, tenant_id: UUID | str, episode_id: UUID | str, *, at: datetime | None = None
    ) -> Episode:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        checks.checked_when(at, "at")
        with self._lock:
            old = self._episode(tid, eid)
            if old is None:
                raise NotFoundError(f"episode {eid} not found")
            end = at or self._clock()
            if old.valid_from is not None and end <= old.valid_from:
                raise InvalidInputError("at must be after the episode's valid_from", field="at")
            stored = old.model_copy(update={"valid_to": end})
            self._episodes[eid] = stored
            return stored.model_copy(deep=True)

    def delete_episode(self, tenant_id: UUID | str, episode_id: UUID | str) -> bool:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        with self._lock:
            if self._episode(tid, eid) is None:
                return False
            del self._episodes[eid]
            return True

    def delete_customer_memory(self, tenant_id: UUID | str, customer_profile_id: UUID | str) -> int:
        tid = parse_id(tenant_id, "tenant_id")
        cid = parse_id(customer_profile_id, "customer_profile_id")
        with self._lock:
            episodes = [
                e.id
                for e in self._episodes.values()
                if e.tenant_id == tid and e.customer_profile_id == cid
            ]
            entities = {
                e.id
                for e in self._entities.values()
                if e.tenant_id == tid and e.customer_profile_id == cid
            }
            for eid in episodes:
                del self._episodes[eid]
            self._drop_entities(entities)
            return len(episodes) + len(entities)

    def vector_search_episodes(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        embedding: Sequence[float],
        *,
        limit: int = 10,
        min_score: float | None = None,
        customer_profile_id: UUID | str | None = None,
        session_id: UUID | str | None = None,
        episode_types: Sequence[EpisodeType | str] | None = None,
        valid_at: datetime | None = None,
        include_embeddings: bool = False,
    ) -> list[tuple[Episode, float]]:
        query = checked_query(embedding, self.dimensions)
        check_min_score(min_score)
        check_limit(limit)
        with self._lock:
            rows = self._episode_rows(
                tenant_id,
                agent_id,
                customer_profile_id,
                session_id,
                None,
                episode_types,
                valid_at,
            )
            scored = [
                (e, cosine_similarity(query, e.embedding)) for e in rows if e.embedding is not None
            ]
            scored = [(e, s) for e, s in scored if min_score is None or s >= min_score]
            scored.sort(key=lambda pair: (-pair[1], pair[0].id))
            return [(found(e, include_embeddings), s) for e, s in scored[:limit]]

    def list_episodes_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Episode]:
        checks.check_name(model, "model")
        with self._lock:
            rows = [
                e.model_copy(deep=True)
                for e in self._episodes.values()
                if e.content and (e.embedding is None or e.embedding_model != model)
            ]
        return paginate(rows, lambda e: (e.id,), limit=limit, cursor=cursor, kinds=(as_uuid,))

    def set_episode_embedding(
        self,
        tenant_id: UUID | str,
        episode_id: UUID | str,
        embedding: Sequence[float],
        model: str,
        *,
        source_text: str | None = None,
    ) -> bool:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        vector = validate_embedding(embedding, self.dimensions)
        checks.check_name(model, "model")
        check_text(source_text, "source_text")
        with self._lock:
            old = self._episode(tid, eid)
            if old is None or (source_text is not None and old.content != source_text):
                return False
            self._episodes[eid] = old.model_copy(
                update={"embedding": float32_list(vector), "embedding_model": model}
            )
            return True

    def _entity(self, tenant_id: UUID, entity_id: UUID) -> Entity | None:
        item = self._entities.get(entity_id)
        return item if item is not None and item.tenant_id == tenant_id else None

    def add_entity(self, entity: Entity) -> Entity:
        item = checks.checked_entity(entity)
        now = self._clock()
        item = item.model_copy(update={"created_at": now, "updated_at": now})
        with self._lock:
            if item.id in self._entities:
                raise DuplicateError(f"entity {item.id} already exists")
            self._entities[item.id] = item
            return item.model_copy(deep=True)

    def get_entity(self, tenant_id: UUID | str, entity_id: UUID | str) -> Entity | None:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(entity_id, "entity_id")
        with self._lock:
            item = self._entity(tid, eid)
            return None if item is None else item.model_copy(deep=True)

    def list_entities(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        entity_type: str | None = None,
        customer_profile_id: UUID | str | None = None,
        canonical_name: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Entity]:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        cid = checks.optional_id(customer_profile_id, "customer_profile_id")
        check_text(entity_type, "entity_type")
        check_text(canonical_name, "canonical_name")
        check_limit(limit)
        with self._lock:
            rows = [
                e.model_copy(deep=True)
                for e in self._entities.values()
                if e.tenant_id == tid
                and e.agent_id == aid
                and (entity_type is None or e.entity_type == entity_type)
                and (cid is None or e.customer_profile_id == cid)
                and (canonical_name is None or e.canonical_name == canonical_name)
            ]
        return paginate(rows, _created_key, limit=limit, cursor=cursor, kinds=_CREATED)

    def update_entity(self, entity: Entity) -> Entity:
        item = checks.checked_entity(entity)
        with self._lock:
            old = self._entity(item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"entity {item.id} not found")
            if item.agent_id != old.agent_id:
                raise InvalidInputError("agent_id cannot change", field="agent_id")
            stored = item.model_copy(
                update={"created_at": old.created_at, "updated_at": self._clock()}
            )
            self._entities[item.id] = stored
            return stored.model_copy(deep=True)

    def _drop_entities(self, entity_ids: set[UUID]) -> None:
        for rid in [
            r.id
            for r in self._relationships.values()
            if r.source_entity_id in entity_ids or r.target_entity_id in entity_ids
        ]:
            del self._relationships[rid]
        for eid in entity_ids:
            del self._entities[eid]

    def delete_entity(self, tenant_id: UUID | str, entity_id: UUID | str) -> bool:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(entity_id, "entity_id")
        with self._lock:
            if self._entity(tid, eid) is None:
                return False
            self._drop_entities({eid})
            return True

    def _relationship(self, tenant_id: UUID, relationship_id: UUID) -> Relationship | None:
        item = self._relationships.get(relationship_id)
        return item if item is not None and item.tenant_id == tenant_id else None

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

    def add_relationship(self, relationship: Relationship) -> Relationship:
        item = checks.checked_relationship(relationship)
        now = self._clock()
        item = item.model_copy(update={"created_at": now, "valid_from": item.valid_from or now})
        checks.check_interval(item.valid_from, item.valid_to)
        with self._lock:
            for end in (item.source_entity_id, item.target_entity_id):
                if self._entity(item.tenant_id, end) is None:
                    raise NotFoundError(f"entity {end} not found")
            if item.id in self._relationships or self._key_taken(item):
                raise DuplicateError("this relationship already exists")
            self._relationships[item.id] = item
            return item.model_copy(deep=True)

    def get_relationship(
        self, tenant_id: UUID | str, relationship_id: UUID | str
    ) -> Relationship | None:
        tid = parse_id(tenant_id, "tenant_id")
        rid = parse_id(relationship_id, "relationship_id")
        with self._lock:
            item = self._relationship(tid, rid)
            return None if item is None else item.model_copy(deep=True)

    def update_relationship(self, relationship: Relationship) -> Relationship:
        item = checks.checked_relationship(relationship)
        with self._lock:
            old = self._relationship(item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"relationship {item.id} not found")
            if (item.source_entity_id, item.target_entity_id) != (
                old.source_entity_id,
                old.target_entity_id,
            ):
                raise InvalidInputError(
                    "a relationship's ends cannot change", field="source_entity_id"
                )
            stored = item.model_copy(
                update={
                    "created_at": old.created_at,
                    "valid_from": item.valid_from or old.valid_from,
                }
            )
            checks.check_interval(stored.valid_from, stored.valid_to)
            if self._key_taken(stored):
                raise DuplicateError("this relationship already exists")
            self._relationships[item.id] = stored
            return stored.model_copy(deep=True)

    def delete_relationship(self, tenant_id: UUID | str, relationship_id: UUID | str) -> bool:
        tid = parse_id(tenant_id, "tenant_id")
        rid = parse_id(relationship_id, "relationship_id")
        with self._lock:
            if self._relationship(tid, rid) is None:
                return False
            del self._relationships[rid]
            return True

    def _touching(
        self,
        tenant_id: UUID,
        entity_ids: set[UUID],
        direction: RelationshipDirection,
        types: set[str] | None,
        when: datetime | None,
    ) -> list[Relationship]:
        out = direction in (RelationshipDirection.OUTGOING, RelationshipDirection.BOTH)
        inc = direction in (RelationshipDirection.INCOMING, RelationshipDirection.BOTH)
        return [
            r
            for r in self._relationships.values()
            if r.tenant_id == tenant_id
            and (
                (out and r.source_entity_id in entity_ids)
                or (inc and r.target_entity_id in entity_ids)
            )
            and (types is None or r.relationship_type in types)
            and (when is None or valid_at(r.valid_from, r.valid_to, when))
        ]

    def list_relationships(
        self,
        tenant_id: UUID | str,
        entity_id: UUID | str,
        *,
        direction: RelationshipDirection | str = RelationshipDirection.BOTH,
        relationship_type: str | None = None,
        valid_at: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Relationship]:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(entity_id, "entity_id")
        way = parse_enum(RelationshipDirection, direction, "direction")
        check_text(relationship_type, "relationship_type")
        checks.checked_when(valid_at, "valid_at")
        check_limit(limit)
        types = None if relationship_type is None else {relationship_type}
        with self._lock:
            rows = [
                r.model_copy(deep=True) for r in self._touching(tid, {eid}, way, types, valid_at)
            ]
        return paginate(rows, _created_key, limit=limit, cursor=cursor, kinds=_CREATED)

    def traverse(
        self,
        tenant_id: UUID | str,
        entity_id: UUID | str,
        *,
        direction: RelationshipDirection | str = RelationshipDirection.BOTH,
        max_depth: int = 2,
        relationship_types: Sequence[str] | None = None,
        valid_at: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> list[Neighbor]:
        tid, start = parse_id(tenant_id, "tenant_id"), parse_id(entity_id, "entity_id")
        way = parse_enum(RelationshipDirection, direction, "direction")
        types = traversal_types(relationship_types)
        checks.checked_when(valid_at, "valid_at")
        check_depth(max_depth)
        check_limit(limit)
        with self._lock:
            if self._entity(tid, start) is None:
                return []
            seen = {start}
            frontier = {start}
            found: list[Neighbor] = []
            for depth in range(1, max_depth + 1):
                rels = sorted(self._touching(tid, frontier, way, types, valid_at), key=_created_key)
                step = next_hop(rels, frontier, seen, way)
                for rel, reached in step:
                    entity = self._entities[reached]
                    found.append(
                        Neighbor(
                            entity=entity.model_copy(deep=True),
                            relationship=rel.model_copy(deep=True),
                            depth=depth,
                        )
                    )
                    if len(found) == limit:
                        return found
                frontier = {reached for _, reached in step}
                if not frontier:
                    break
            return found

"""The PostgreSQL MemoryStore (SQLAlchemy Core on psycopg 3, pgvector for embeddings).

Batches of episodes, customer erasure and entity deletes run in one transaction each.
Relationships reference entities through composite foreign keys (tenant, entity), so a
relationship to another tenant's entity cannot be stored at all; deleting an entity removes
its relationships by ``ON DELETE CASCADE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa

from stores.common.keyset import as_datetime, as_uuid, cursor_key, page_of
from stores.common.pagination import Page
from stores.common.validation import (
    check_limit,
    check_text,
    parse_enum,
    parse_id,
    validate_embedding,
)
from stores.common.vectors import check_min_score, checked_query
from stores.driver_errors import translated
from stores.errors import InvalidInputError, NotFoundError
from stores.memory import checks
from stores.memory.graph import check_depth, next_hop, traversal_types
from stores.memory.models import (
    Entity,
    Episode,
    EpisodeType,
    Neighbor,
    Relationship,
    RelationshipDirection,
)
from stores.memory.store import DEFAULT_PAGE_SIZE, MemoryStore
from stores.postgres import schema
from stores.postgres.rows import after, plain_row, row_values, selectable, to_model
from stores.postgres.store import PostgresVectorStore

EP = schema.episodes
EN = schema.entities
RE = schema.relationships

M = TypeVar("M", Episode, Entity, Relationship)
_CREATED = (as_datetime, as_uuid)


def _valid_at(table: sa.Table, when: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.valid_from <= when, sa.or_(table.c.valid_to.is_(None), table.c.valid_to > when)
    )


class PostgresMemoryStore(PostgresVectorStore, MemoryStore):
    """A :class:`MemoryStore` on the ``episodes``, ``entities`` and ``relationships`` tables."""

    dimensions_table = "episodes"

    def _get(self, table: sa.Table, cls: type[M], tenant_id: UUID, item_id: UUID) -> M | None:
        rows = self._read(
            sa.select(*selectable(table)).where(
                table.c.tenant_id == tenant_id, table.c.id == item_id
            )
        )
        return to_model(cls, rows[0]) if rows else None

    def _locked(
        self, conn: sa.Connection, table: sa.Table, tenant_id: UUID, item_id: UUID, what: str
    ) -> dict[str, Any]:
        """Lock a row for update and return it, or raise NotFoundError."""
        found = (
            conn.execute(
                sa.select(*selectable(table))
                .where(table.c.tenant_id == tenant_id, table.c.id == item_id)
                .with_for_update()
            )
            .mappings()
            .first()
        )
        if found is None:
            raise NotFoundError(f"{what} {item_id} not found")
        return plain_row(found)

    def _update(
        self,
        conn: sa.Connection,
        table: sa.Table,
        cls: type[M],
        tenant_id: UUID,
        item_id: UUID,
        values: dict[str, Any],
    ) -> M:
        """Write ``values`` to a row and return it as ``cls``."""
        row = (
            conn.execute(
                table.update()
                .where(table.c.tenant_id == tenant_id, table.c.id == item_id)
                .values(**values)
                .returning(*selectable(table))
            )
            .mappings()
            .one()
        )
        return to_model(cls, row)

    def _delete(self, table: sa.Table, tenant_id: UUID, item_id: UUID) -> bool:
        with translated(), self._engine.begin() as conn:
            result = conn.execute(
                table.delete().where(table.c.tenant_id == tenant_id, table.c.id == item_id)
            )
        return bool(result.rowcount)

    def _prepared(self, episode: Episode, now: datetime) -> Episode:
        item = checks.checked_episode(episode, self.dimensions)
        item = item.model_copy(update={"recorded_at": now, "valid_from": item.valid_from or now})
        checks.check_interval(item.valid_from, item.valid_to)
        return item

    def add_episode(self, episode: Episode) -> Episode:
        return self.add_episodes([episode])[0]

    def add_episodes(self, episodes: Sequence[Episode]) -> list[Episode]:
        now = self._clock()
        items = [self._prepared(e, now) for e in episodes]
        if not items:
            return []
        with translated(), self._engine.begin() as conn:
            rows = (
                conn.execute(
                    EP.insert().returning(*selectable(EP), sort_by_parameter_order=True),
                    [row_values(item) for item in items],
                )
                .mappings()
                .all()
            )
        return [to_model(Episode, r) for r in rows]

    def get_episode(self, tenant_id: UUID | str, episode_id: UUID | str) -> Episode | None:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        return self._get(EP, Episode, tid, eid)

    def _episode_filters(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        customer_profile_id: UUID | str | None,
        session_id: UUID | str | None,
        group_id: str | None,
        episode_types: Sequence[EpisodeType | str] | None,
        when: datetime | None,
    ) -> list[sa.ColumnElement[bool]]:
        where = [
            EP.c.tenant_id == parse_id(tenant_id, "tenant_id"),
            EP.c.agent_id == parse_id(agent_id, "agent_id"),
        ]
        cid = checks.optional_id(customer_profile_id, "customer_profile_id")
        sid = checks.optional_id(session_id, "session_id")
        check_text(group_id, "group_id")
        types = checks.episode_types(episode_types)
        checks.checked_when(when, "valid_at")
        if cid is not None:
            where.append(EP.c.customer_profile_id == cid)
        if sid is not None:
            where.append(EP.c.session_id == sid)
        if group_id is not None:
            where.append(EP.c.group_id == group_id)
        if types is not None:
            where.append(EP.c.episode_type.in_([t.value for t in types]) if types else sa.false())
        if when is not None:
            where.append(_valid_at(EP, when))
        return where

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
        where = self._episode_filters(
            tenant_id,
            agent_id,
            customer_profile_id,
            session_id,
            group_id,
            episode_types,
            valid_at,
        )
        check_limit(limit)
        key = cursor_key(cursor, _CREATED)
        order = [EP.c.recorded_at, EP.c.id]
        stmt = (
            sa.select(*selectable(EP))
            .where(*where, *after(order, key, descending=True))
            .order_by(*(c.desc() for c in order))
            .limit(limit + 1)
        )
        items = [to_model(Episode, r) for r in self._read(stmt)]
        return page_of(items, limit, lambda e: (e.recorded_at, e.id))

    def update_episode(self, episode: Episode) -> Episode:
        item = checks.checked_episode(episode, self.dimensions)
        with translated(), self._engine.begin() as conn:
            old = self._locked(conn, EP, item.tenant_id, item.id, "episode")
            if item.agent_id != old["agent_id"]:
                raise InvalidInputError("agent_id cannot change", field="agent_id")
            values = row_values(item, exclude={"id", "tenant_id", "recorded_at"})
            values["valid_from"] = item.valid_from or old["valid_from"]
            checks.check_interval(values["valid_from"], item.valid_to)
            if old["content"] != item.content and checks.same_vector(
                item.embedding, old["embedding"]
            ):
                values.update(embedding=None, embedding_model=None)
            return self._update(conn, EP, Episode, item.tenant_id, item.id, values)

    def invalidate_episode(
        self, tenant_id: UUID | str, episode_id: UUID | str, *, at: datetime | None = None
    ) -> Episode:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        checks.checked_when(at, "at")
        end = at or self._clock()
        with translated(), self._engine.begin() as conn:
            valid_from = conn.execute(
                sa.select(EP.c.valid_from)
                .where(EP.c.tenant_id == tid, EP.c.id == eid)
                .with_for_update()
            ).scalar()
            if valid_from is None:
                raise NotFoundError(f"episode {eid} not found")
            if end <= valid_from:
                raise InvalidInputError("at must be after the episode's valid_from", field="at")
            return self._update(conn, EP, Episode, tid, eid, {"valid_to": end})

    def delete_episode(self, tenant_id: UUID | str, episode_id: UUID | str) -> bool:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        return self._delete(EP, tid, eid)

    def delete_customer_memory(self, tenant_id: UUID | str, customer_profile_id: UUID | str) -> int:
        tid = parse_id(tenant_id, "tenant_id")
        cid = parse_id(customer_profile_id, "customer_profile_id")
        with translated(), self._engine.begin() as conn:
            episodes = conn.execute(
                EP.delete().where(EP.c.tenant_id == tid, EP.c.customer_profile_id == cid)
            ).rowcount
            entities = conn.execute(
                EN.delete().where(EN.c.tenant_id == tid, EN.c.customer_profile_id == cid)
            ).rowcount
        return int(episodes) + int(entities)

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
        where = self._episode_filters(
            tenant_id, agent_id, customer_profile_id, session_id, None, episode_types, valid_at
        )
        with translated(), self._engine.begin() as conn:
            outcome = self._searcher.search(
                conn, EP, where, query, limit, embeddings=include_embeddings
            )
        return [
            (to_model(Episode, row), score)
            for row, score in outcome.rows
            if min_score is None or score >= min_score
        ]

    def list_episodes_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Episode]:
        checks.check_name(model, "model")
        check_limit(limit)
        key = cursor_key(cursor, (as_uuid,))
        stmt = (
            sa.select(*selectable(EP))
            .where(
                EP.c.content != "",
                sa.or_(EP.c.embedding.is_(None), EP.c.embedding_model.is_distinct_from(model)),
                *after([EP.c.id], key),
            )
            .order_by(EP.c.id)
            .limit(limit + 1)
        )
        items = [to_model(Episode, r) for r in self._read(stmt)]
        return page_of(items, limit, lambda e: (e.id,))

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
        where = [EP.c.tenant_id == tid, EP.c.id == eid]
        if source_text is not None:
            where.append(EP.c.content == source_text)
        with translated(), self._engine.begin() as conn:
            result = conn.execute(
                EP.update().where(*where).values(embedding=vector, embedding_model=model)
            )
        return bool(result.rowcount)

    def add_entity(self, entity: Entity) -> Entity:
        item = checks.checked_entity(entity)
        now = self._clock()
        item = item.model_copy(update={"created_at": now, "updated_at": now})
        with translated(), self._engine.begin() as conn:
            row = (
                conn.execute(EN.insert().values(**row_values(item)).returning(EN)).mappings().one()
            )
        return to_model(Entity, row)

    def get_entity(self, tenant_id: UUID | str, entity_id: UUID | str) -> Entity | None:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(entity_id, "entity_id")
        return self._get(EN, Entity, tid, eid)

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
        where = [
            EN.c.tenant_id == parse_id(tenant_id, "tenant_id"),
            EN.c.agent_id == parse_id(agent_id, "agent_id"),
        ]
        cid = checks.optional_id(customer_profile_id, "customer_profile_id")
        check_text(entity_type, "entity_type")
        check_text(canonical_name, "canonical_name")
        check_limit(limit)
        if entity_type is not None:
            where.append(EN.c.entity_type == entity_type)
        if cid is not None:
            where.append(EN.c.customer_profile_id == cid)
        if canonical_name is not None:
            where.append(EN.c.canonical_name == canonical_name)
        key = cursor_key(cursor, _CREATED)
        order = [EN.c.created_at, EN.c.id]
        stmt = sa.select(EN).where(*where, *after(order, key)).order_by(*order).limit(limit + 1)
        items = [to_model(Entity, r) for r in self._read(stmt)]
        return page_of(items, limit, lambda e: (e.created_at, e.id))

    def update_entity(self, entity: Entity) -> Entity:
        item = checks.checked_entity(entity)
        with translated(), self._engine.begin() as conn:
            agent = conn.execute(
                sa.select(EN.c.agent_id)
                .where(EN.c.tenant_id == item.tenant_id, EN.c.id == item.id)
                .with_for_update()
            ).scalar()
            if agent is None:
                raise NotFoundError(f"entity {item.id} not found")
            if agent != item.agent_id:
                raise InvalidInputError("agent_id cannot change", field="agent_id")
            values = row_values(item, exclude={"id", "tenant_id", "created_at"})
            values["updated_at"] = self._clock()
            return self._update(conn, EN, Entity, item.tenant_id, item.id, values)

    def delete_entity(self, tenant_id: UUID | str, entity_id: UUID | str) -> bool:
        tid, eid = parse_id(tenant_id, "tenant_id"), parse_id(entity_id, "entity_id")
        return self._delete(EN, tid, eid)

    def add_relationship(self, relationship: Relationship) -> Relationship:
        item = checks.checked_relationship(relationship)
        now = self._clock()
        item = item.model_copy(update={"created_at": now, "valid_from": item.valid_from or now})
        checks.check_interval(item.valid_from, item.valid_to)
        with translated(), self._engine.begin() as conn:
            # The foreign keys would refuse a missing end too; checking first names the end.
            for end in (item.source_entity_id, item.target_entity_id):
                found = conn.execute(
                    sa.select(EN.c.id)
                    .where(EN.c.tenant_id == item.tenant_id, EN.c.id == end)
                    .with_for_update(read=True)
                ).first()
                if found is None:
                    raise NotFoundError(f"entity {end} not found")
            row = (
                conn.execute(RE.insert().values(**row_values(item)).returning(RE)).mappings().one()
            )
        return to_model(Relationship, row)

    def get_relationship(
        self, tenant_id: UUID | str, relationship_id: UUID | str
    ) -> Relationship | None:
        tid = parse_id(tenant_id, "tenant_id")
        rid = parse_id(relationship_id, "relationship_id")
        return self._get(RE, Relationship, tid, rid)

    def update_relationship(self, relationship: Relationship) -> Relationship:
        item = checks.checked_relationship(relationship)
        with translated(), self._engine.begin() as conn:
            old = self._locked(conn, RE, item.tenant_id, item.id, "relationship")
            if (item.source_entity_id, item.target_entity_id) != (
                old["source_entity_id"],
                old["target_entity_id"],
            ):
                raise InvalidInputError(
                    "a relationship's ends cannot change", field="source_entity_id"
                )
            values = row_values(
                item,
                exclude={"id", "tenant_id", "created_at", "source_entity_id", "target_entity_id"},
            )
            values["valid_from"] = item.valid_from or old["valid_from"]
            checks.check_interval(values["valid_from"], item.valid_to)
            return self._update(conn, RE, Relationship, item.tenant_id, item.id, values)

    def delete_relationship(self, tenant_id: UUID | str, relationship_id: UUID | str) -> bool:
        tid = parse_id(tenant_id, "tenant_id")
        rid = parse_id(relationship_id, "relationship_id")
        return self._delete(RE, tid, rid)

    def _touching(
        self,
        tenant_id: UUID,
        entity_ids: Sequence[UUID],
        direction: RelationshipDirection,
        types: set[str] | None,
        when: datetime | None,
    ) -> list[sa.ColumnElement[bool]]:
        ends = []
        if direction in (RelationshipDirection.OUTGOING, RelationshipDirection.BOTH):
            ends.append(RE.c.source_entity_id.in_(entity_ids))
        if direction in (RelationshipDirection.INCOMING, RelationshipDirection.BOTH):
            ends.append(RE.c.target_entity_id.in_(entity_ids))
        where = [RE.c.tenant_id == tenant_id, sa.or_(*ends)]
        if types is not None:
            where.append(RE.c.relationship_type.in_(sorted(types)))
        if when is not None:
            where.append(_valid_at(RE, when))
        return where

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
        key = cursor_key(cursor, _CREATED)
        order = [RE.c.created_at, RE.c.id]
        where = self._touching(tid, [eid], way, types, valid_at)
        stmt = sa.select(RE).where(*where, *after(order, key)).order_by(*order).limit(limit + 1)
        items = [to_model(Relationship, r) for r in self._read(stmt)]
        return page_of(items, limit, lambda r: (r.created_at, r.id))

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
        found: list[Neighbor] = []
        # One snapshot for the whole walk, so that it sees a consistent graph.
        with translated(), self._engine.connect() as conn, conn.begin():
            conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            if (
                conn.execute(
                    sa.select(EN.c.id).where(EN.c.tenant_id == tid, EN.c.id == start)
                ).first()
                is None
            ):
                return []
            seen, frontier = {start}, {start}
            for depth in range(1, max_depth + 1):
                near = self._touching(tid, sorted(frontier), way, types, valid_at)
                rows = conn.execute(
                    sa.select(RE).where(*near).order_by(RE.c.created_at, RE.c.id)
                ).mappings()
                step = next_hop([to_model(Relationship, r) for r in rows], frontier, seen, way)
                step = step[: limit - len(found)]
                entities = {
                    r["id"]: to_model(Entity, r)
                    for r in conn.execute(
                        sa.select(EN).where(
                            EN.c.tenant_id == tid, EN.c.id.in_([e for _, e in step])
                        )
                    ).mappings()
                }
                found.extend(
                    Neighbor(entity=entities[reached], relationship=rel, depth=depth)
                    for rel, reached in step
                )
                frontier = {reached for _, reached in step}
                if not frontier or len(found) >= limit:
                    break
        return found

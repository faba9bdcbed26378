"""The PostgreSQL MemoryStore (SQLAlchemy Core on psycopg 3, pgvector for embeddings).

Batches of episodes, customer erasure and entity deletes run in one transaction each.
Relationships reference entities through composite foreign keys (tenant, entity), so a
relationship to another tenant's entity cannot be stored at all; deleting an entity removes
its relationships by ``ON DELETE CASCADE``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from stores.errors import NotFoundError
from stores.memory.graph import Graph
from stores.memory.models import Entity, Episode, Relationship
from stores.memory.query import Listing, M
from stores.memory.store import MemoryStore
from stores.postgres import schema
from stores.postgres.rows import after, row_values, selectable, to_model
from stores.postgres.store import PostgresVectorStore

EP = schema.episodes
EN = schema.entities
RE = schema.relationships

_TABLES: dict[type[Any], sa.Table] = {Episode: EP, Entity: EN, Relationship: RE}


def _where(table: sa.Table, listing: Listing[Any]) -> list[sa.ColumnElement[bool]]:
    """The WHERE clause of ``listing`` (cursor aside): what :meth:`Listing.matches` checks."""
    where = [table.c[name] == value for name, value in listing.equals.items()]
    if listing.types is not None:
        types = sorted(listing.types)
        where.append(table.c[listing.type_field].in_(types) if types else sa.false())
    if listing.valid_at is not None:
        when = listing.valid_at
        where.append(table.c.valid_from <= when)
        where.append(sa.or_(table.c.valid_to.is_(None), table.c.valid_to > when))
    if listing.ends:
        ends = sorted(listing.ends)
        sides = [RE.c.source_entity_id.in_(ends)] if listing.outgoing else []
        sides += [RE.c.target_entity_id.in_(ends)] if listing.incoming else []
        where.append(sa.or_(*sides))
    if listing.stale_for is not None:
        where.append(EP.c.content != "")
        where.append(
            sa.or_(
                EP.c.embedding.is_(None), EP.c.embedding_model.is_distinct_from(listing.stale_for)
            )
        )
    return where


def _by_id(table: sa.Table, tenant_id: UUID, item_id: UUID) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.tenant_id == tenant_id, table.c.id == item_id)


class PostgresMemoryStore(PostgresVectorStore, MemoryStore):
    """A :class:`MemoryStore` on the ``episodes``, ``entities`` and ``relationships`` tables."""

    dimensions_table = "episodes"

    def _insert_episodes(self, episodes: list[Episode]) -> list[Episode]:
        if not episodes:
            return []
        with self._engine.begin() as conn:
            rows = conn.execute(
                EP.insert().returning(*selectable(EP), sort_by_parameter_order=True),
                [row_values(item) for item in episodes],
            ).mappings()
            return [to_model(Episode, r) for r in rows]

    def _insert_entity(self, entity: Entity) -> Entity:
        with self._engine.begin() as conn:
            return self._insert(conn, EN, entity)

    def _insert_relationship(self, relationship: Relationship) -> Relationship:
        with self._engine.begin() as conn:
            # The foreign keys would refuse a missing end too; checking first names the end.
            for end in (relationship.source_entity_id, relationship.target_entity_id):
                found = conn.execute(
                    sa.select(EN.c.id)
                    .where(_by_id(EN, relationship.tenant_id, end))
                    .with_for_update(read=True)
                ).first()
                if found is None:
                    raise NotFoundError(f"entity {end} not found")
            return self._insert(conn, RE, relationship)

    def _insert(self, conn: sa.Connection, table: sa.Table, item: M) -> M:
        row = conn.execute(table.insert().values(**row_values(item)).returning(table)).mappings()
        return to_model(type(item), row.one())

    def _get(self, kind: type[M], tenant_id: UUID, item_id: UUID) -> M | None:
        table = _TABLES[kind]
        rows = self._read(sa.select(*selectable(table)).where(_by_id(table, tenant_id, item_id)))
        return to_model(kind, rows[0]) if rows else None

    def _replace(
        self, kind: type[M], tenant_id: UUID, item_id: UUID, change: Callable[[M], M]
    ) -> M:
        table = _TABLES[kind]
        where = _by_id(table, tenant_id, item_id)
        with self._engine.begin() as conn:
            row = (
                conn.execute(sa.select(*selectable(table)).where(where).with_for_update())
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError(f"{kind.__name__.lower()} {item_id} not found")
            old = to_model(kind, row)
            before, after_change = row_values(old), row_values(change(old))
            # Only the columns that change are written (an invalidation sends no vector).
            values = {k: v for k, v in after_change.items() if before[k] != v}
            if not values:
                return old
            stored = (
                conn.execute(
                    table.update().where(where).values(**values).returning(*selectable(table))
                )
                .mappings()
                .one()
            )
            return to_model(kind, stored)

    def _delete(self, kind: type[M], tenant_id: UUID, item_id: UUID) -> bool:
        table = _TABLES[kind]
        with self._engine.begin() as conn:
            result = conn.execute(table.delete().where(_by_id(table, tenant_id, item_id)))
        return bool(result.rowcount)

    def _delete_customer(self, tenant_id: UUID, customer_profile_id: UUID) -> int:
        deleted = 0
        with self._engine.begin() as conn:
            for table in (EP, EN):
                deleted += conn.execute(
                    table.delete().where(
                        table.c.tenant_id == tenant_id,
                        table.c.customer_profile_id == customer_profile_id,
                    )
                ).rowcount
        return deleted

    def _list(self, listing: Listing[M]) -> list[M]:
        table = _TABLES[listing.kind]
        order = [table.c[name] for name in listing.order]
        stmt = (
            sa.select(*selectable(table))
            .where(
                *_where(table, listing), *after(order, listing.after, descending=listing.descending)
            )
            .order_by(*(c.desc() if listing.descending else c for c in order))
            .limit(listing.limit + 1)
        )
        return [to_model(listing.kind, r) for r in self._read(stmt)]

    def _search(
        self, listing: Listing[Episode], vector: list[float], limit: int, embeddings: bool
    ) -> list[tuple[Episode, float]]:
        with self._engine.begin() as conn:
            outcome = self._searcher.search(
                conn, EP, _where(EP, listing), vector, limit, embeddings=embeddings
            )
        return [(to_model(Episode, row), score) for row, score in outcome.rows]

    def _set_embedding(
        self, tenant: UUID, eid: UUID, vector: list[float], model: str, text: str | None
    ) -> bool:
        where = [_by_id(EP, tenant, eid)]
        if text is not None:
            where.append(EP.c.content == text)
        with self._engine.begin() as conn:
            result = conn.execute(
                EP.update().where(*where).values(embedding=vector, embedding_model=model)
            )
        return bool(result.rowcount)

    @contextmanager
    def _graph(self, tenant_id: UUID) -> Iterator[Graph]:
        # One snapshot for the whole walk, so that it sees a consistent graph.
        with self._engine.connect() as conn, conn.begin():
            conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))

            def entities(ids: Sequence[UUID]) -> dict[UUID, Entity]:
                query = sa.select(EN).where(EN.c.tenant_id == tenant_id, EN.c.id.in_(ids))
                return {r["id"]: to_model(Entity, r) for r in conn.execute(query).mappings()}

            def relationships(listing: Listing[Relationship]) -> list[Relationship]:
                query = sa.select(RE).where(*_where(RE, listing))
                rows = conn.execute(query.order_by(RE.c.created_at, RE.c.id)).mappings()
                return [to_model(Relationship, r) for r in rows]

            yield Graph(relationships, entities)

"""The PostgreSQL ConfigStore (SQLAlchemy Core on psycopg 3, pgvector for embeddings).

Every change that spans rows runs in one transaction: a scenario update and the archive of
the version it replaces, an agent's delete and the delete of everything under it, a
migration plan's status change. Items are written while holding ``FOR SHARE`` on their
parent's row (an agent's, a plan's scenario's), so a parent deleted concurrently never keeps
a live child. Updates lock the item's row (``FOR UPDATE``) and check it (a scenario's
version) under the lock; status changes of migration plans are single conditional UPDATEs,
so of two racing transitions one wins and the other raises ConflictError.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import sqlalchemy as sa

from stores.common.keyset import page_of
from stores.common.pagination import Page
from stores.config import kinds
from stores.config.kinds import Kind, Listing, M, Search, Where
from stores.config.models import MigrationPlan, MigrationPlanStatus, Scenario, ScenarioArchive
from stores.config.operations import Revise
from stores.config.store import ConfigStore
from stores.postgres import schema
from stores.postgres.rows import row_values, selectable, to_model
from stores.postgres.store import PostgresVectorStore

SC = schema.scenarios
AR = schema.scenario_archives
MP = schema.migration_plans


class PostgresConfigStore(PostgresVectorStore, ConfigStore):
    """A :class:`ConfigStore` on the configuration tables of the hearth schema."""

    dimensions_table = "rules"

    def _insert(self, kind: Kind[M], item: M) -> M:
        table = _table(kind)
        with self._engine.begin() as conn:
            if kind.parent is not None:
                self._admit(conn, kind, item)
            stmt = table.insert().values(**row_values(item)).returning(*selectable(table))
            row = conn.execute(stmt).mappings().one()
        return to_model(kind.model, row)

    def _admit(self, conn: sa.Connection, kind: Kind[M], item: M) -> None:
        """Hold the item's live parent ``FOR SHARE`` and check the item against it."""
        assert kind.parent is not None
        parent_id = getattr(item, kind.parent_field)
        table = _table(kind.parent)
        where = _matching(kind.parent, table, {"tenant_id": item.tenant_id, "id": parent_id})
        stmt = sa.select(*selectable(table)).where(*where).with_for_update(read=True)
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise kind.parent.not_found(parent_id)
        if kind.admit is not None:
            kind.admit(item, to_model(kind.parent.model, row))

    def _find(self, kind: Kind[M], where: Where) -> M | None:
        table = _table(kind)
        rows = self._read(sa.select(*selectable(table)).where(*_matching(kind, table, where)))
        return to_model(kind.model, rows[0]) if rows else None

    def _page(self, kind: Kind[M], q: Listing) -> Page[M]:
        table = _table(kind)
        where = _matching(kind, table, q.where)
        if q.live_parent:
            where.append(_parent_live(kind, table))
        return self._keyset(kind, table, where, q)

    def _keyset(
        self, kind: Kind[M], table: sa.Table, where: list[sa.ColumnElement[bool]], q: Listing
    ) -> Page[M]:
        columns = [table.c[name] for name in q.order]
        stmt = (
            sa.select(*selectable(table))
            .where(*where, *_after(columns, q.after))
            .order_by(*map(_bytewise, columns))
            .limit(q.limit + 1)
        )
        return page_of([to_model(kind.model, r) for r in self._read(stmt)], q.limit, q.key)

    def _rewrite(self, kind: Kind[M], new: M, revise: Revise) -> M:
        table = _table(kind)
        key = [table.c.tenant_id == new.tenant_id, table.c.id == new.id]
        with self._engine.begin() as conn:
            live = _matching(kind, table, {"tenant_id": new.tenant_id, "id": new.id})
            locking = sa.select(*selectable(table)).where(*live).with_for_update()
            row = conn.execute(locking).mappings().first()
            if row is None:
                raise kind.not_found(new.id)
            old = to_model(kind.model, row)
            stored = new.model_copy(update={"created_at": old.created_at, **revise(old)})
            if kind.admit is not None:
                self._admit(conn, kind, stored)
            if kind.archive is not None:
                archive = kind.archive(old, stored.updated_at)
                data = archive.scenario.model_dump(mode="json", exclude={"embedding"})
                values = row_values(archive, exclude={"scenario"})
                conn.execute(AR.insert().values(**values, scenario_data=data))
            values = row_values(stored, exclude={"id", "tenant_id", "created_at"})
            stmt = table.update().where(*key).values(**values).returning(*selectable(table))
            row = conn.execute(stmt).mappings().one()
        return to_model(kind.model, row)

    def _remove(self, kind: Kind[M], where: Where) -> bool:
        now = self._clock()
        with self._engine.begin() as conn:
            if kind.deletable is not None:
                table = _table(kind)
                locking = sa.select(*selectable(table)).where(*_matching(kind, table, where))
                row = conn.execute(locking.with_for_update()).mappings().first()
                if row is not None:
                    kind.deletable(to_model(kind.model, row))
            if not _drop(conn, kind, where, now):
                return False
            for child in kind.children:
                key = {"tenant_id": where["tenant_id"], child.parent_field: where["id"]}
                _drop(conn, child, key, now)
        return True

    def _nearest(self, kind: Kind[M], search: Search) -> list[tuple[M, float]]:
        table = _table(kind)
        # Deleted rows are hidden here as in every read (and the partial HNSW index needs it).
        where = _matching(kind, table, search.where)
        with self._engine.begin() as conn:
            outcome = self._searcher.search(
                conn, table, where, search.query, search.limit, embeddings=search.include_embeddings
            )
        return [
            (to_model(kind.model, row), score)
            for row, score in outcome.rows
            if search.min_score is None or score >= search.min_score
        ]

    def _unembedded(self, kind: Kind[M], model: str, q: Listing) -> Page[M]:
        assert kind.embedded is not None
        table = _table(kind)
        text = table.c[kind.embedded]
        stale = sa.or_(table.c.embedding.is_(None), table.c.embedding_model.is_distinct_from(model))
        where = _matching(kind, table, q.where)
        where += [text.is_not(None), text != "", stale]
        return self._keyset(kind, table, where, q)

    def _embed(self, kind: Kind[M], where: Where, vector: list[float], model: str) -> bool:
        table = _table(kind)
        stmt = table.update().where(*_matching(kind, table, where))
        with self._engine.begin() as conn:
            result = conn.execute(stmt.values(embedding=vector, embedding_model=model))
        return bool(result.rowcount)

    def _scenario_at(self, where: Where, version: int) -> Scenario | None:
        with self._engine.connect() as conn:
            stmt = sa.select(*selectable(SC)).where(*_matching(kinds.SCENARIOS, SC, where))
            current = conn.execute(stmt).mappings().first()
            if current is None:
                return None
            if current["version"] == version:
                return to_model(Scenario, current)
            data = conn.execute(
                sa.select(AR.c.scenario_data).where(
                    AR.c.tenant_id == current["tenant_id"],
                    AR.c.scenario_id == current["id"],
                    AR.c.version == version,
                )
            ).scalar()
        return None if data is None else Scenario.model_validate(data)

    def _archived(self, q: Listing) -> Page[ScenarioArchive]:
        tid, sid = q.where["tenant_id"], q.where["scenario_id"]
        live = sa.exists().where(*_matching(kinds.SCENARIOS, SC, {"tenant_id": tid, "id": sid}))
        stmt = (
            sa.select(AR)
            .where(AR.c.tenant_id == tid, AR.c.scenario_id == sid, live)
            .where(*_after([AR.c.version], q.after))
            .order_by(AR.c.version)
            .limit(q.limit + 1)
        )
        items = [
            ScenarioArchive(
                tenant_id=r["tenant_id"],
                scenario_id=r["scenario_id"],
                version=r["version"],
                scenario=Scenario.model_validate(r["scenario_data"]),
                archived_at=r["archived_at"],
            )
            for r in self._read(stmt)
        ]
        return page_of(items, q.limit, q.key)

    def _transition(
        self, where: Where, target: MigrationPlanStatus, stamps: dict[str, Any]
    ) -> MigrationPlan:
        key = _matching(kinds.PLANS, MP, where)
        allowed = [status.value for status in kinds.sources(target)]
        values = {name: _sql(value) for name, value in stamps.items()}
        with self._engine.begin() as conn:
            stmt = MP.update().where(*key, MP.c.status.in_(allowed)).values(**values)
            row = conn.execute(stmt.returning(MP)).mappings().first()
            if row is None:
                current = conn.execute(sa.select(MP.c.status).where(*key)).scalar()
                if current is None:
                    raise kinds.PLANS.not_found(where["id"])
                raise kinds.cannot_go(where["id"], current, target)
        return to_model(MigrationPlan, row)


def _table(kind: Kind[Any]) -> sa.Table:
    return schema.metadata.tables[kind.table]


def _sql(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _matching(kind: Kind[Any], table: sa.Table, where: Where) -> list[sa.ColumnElement[bool]]:
    """The clauses selecting the live rows of ``table`` whose columns equal ``where``."""
    clauses = [
        table.c[name].is_(value) if isinstance(value, bool) else table.c[name] == _sql(value)
        for name, value in where.items()
    ]
    if kind.soft_delete:
        clauses.append(table.c.deleted_at.is_(None))
    return clauses


def _parent_live(kind: Kind[Any], table: sa.Table) -> sa.ColumnElement[bool]:
    """True for a row whose parent row is live."""
    assert kind.parent is not None
    parent = _table(kind.parent)
    return sa.exists().where(
        parent.c.tenant_id == table.c.tenant_id,
        parent.c.id == table.c[kind.parent_field],
        parent.c.deleted_at.is_(None),
    )


def _drop(conn: sa.Connection, kind: Kind[Any], where: Where, now: Any) -> bool:
    """Delete the live rows matching ``where`` (softly if the kind is soft-deleted)."""
    table = _table(kind)
    clauses = _matching(kind, table, where)
    stmt: sa.Update | sa.Delete = (
        table.update().where(*clauses).values(deleted_at=now)
        if kind.soft_delete
        else table.delete().where(*clauses)
    )
    return bool(conn.execute(stmt).rowcount)


def _bytewise(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    # Text sorts byte-wise, as Python sorts it, whatever the database collation: the
    # backends then agree on the order of tool ids.
    return column.collate("C") if isinstance(column.type, sa.String) else column


def _after(
    columns: list[sa.Column[Any]], key: tuple[Any, ...] | None
) -> list[sa.ColumnElement[bool]]:
    """The keyset clause "comes after ``key``" for rows ordered by ``columns``."""
    if key is None:
        return []
    values = [sa.literal(v, c.type) for c, v in zip(columns, key, strict=True)]
    return [sa.tuple_(*map(_bytewise, columns)) > sa.tuple_(*map(_bytewise, values))]

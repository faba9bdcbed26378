"""The PostgreSQL audit store (SQLAlchemy Core on psycopg 3)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa

from stores.audit.models import AuditEvent, TurnRecord
from stores.audit.store import AuditStore
from stores.audit.validation import Listing, R
from stores.postgres import schema
from stores.postgres.store import PostgresStore

T = schema.turn_records
E = schema.audit_events

_TABLES: dict[type[Any], sa.Table] = {TurnRecord: T, AuditEvent: E}


class PostgresAuditStore(PostgresStore, AuditStore):
    """An :class:`AuditStore` on the ``turn_records`` and ``audit_events`` tables.

    Every write is one INSERT (atomic on its own); duplicate keys and dangling turn
    references are caught by the table's constraints, so concurrent writers cannot
    slip past them.
    """

    def _insert_turn(self, turn: TurnRecord) -> TurnRecord:
        return self._insert(T, turn)

    def _insert_event(self, event: AuditEvent) -> AuditEvent:
        return self._insert(E, event)

    def _insert(self, table: sa.Table, record: R) -> R:
        with self._engine.begin() as conn:
            conn.execute(table.insert().values(**record.model_dump()))
        return record

    def _get(self, kind: type[R], tenant_id: UUID, item_id: UUID) -> R | None:
        table = _TABLES[kind]
        rows = self._read(
            sa.select(table).where(table.c.tenant_id == tenant_id, table.c.id == item_id)
        )
        return kind.model_validate(dict(rows[0])) if rows else None

    def _session_turns(
        self, tenant_id: UUID, session_id: UUID, after: int | None, limit: int
    ) -> list[TurnRecord]:
        query = sa.select(T).where(T.c.tenant_id == tenant_id, T.c.session_id == session_id)
        if after is not None:
            query = query.where(T.c.turn_number > after)
        rows = self._read(query.order_by(T.c.turn_number).limit(limit + 1))
        return [TurnRecord.model_validate(dict(r)) for r in rows]

    def _newest(self, listing: Listing[R]) -> list[R]:
        table = _TABLES[listing.kind]
        query = sa.select(table).where(table.c.tenant_id == listing.tenant_id)
        if listing.since is not None:
            query = query.where(table.c.created_at >= listing.since)
        if listing.until is not None:
            query = query.where(table.c.created_at < listing.until)
        if listing.after is not None:
            query = query.where(
                sa.tuple_(table.c.created_at, table.c.id) < sa.tuple_(*listing.after)
            )
        if listing.event_types is not None:
            query = query.where(table.c.event_type.in_(listing.event_types))
        if listing.session_id is not None:
            query = query.where(table.c.session_id == listing.session_id)
        if listing.turn_id is not None:
            query = query.where(table.c.turn_id == listing.turn_id)
        query = query.order_by(table.c.created_at.desc(), table.c.id.desc())
        rows = self._read(query.limit(listing.limit + 1))
        return [listing.kind.model_validate(dict(r)) for r in rows]

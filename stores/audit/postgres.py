"""The PostgreSQL audit store (SQLAlchemy Core on psycopg 3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from stores.audit.models import AuditEvent, TurnRecord
from stores.audit.store import AuditStore
from stores.audit.validation import (
    event_types,
    parse_time_cursor,
    parse_turn_cursor,
    prepare_event,
    prepare_turn,
    time_cursor,
    time_range,
)
from stores.common import Page, check_limit, encode_cursor, parse_id
from stores.driver_errors import translated
from stores.postgres import schema
from stores.postgres.store import PostgresStore

T = schema.turn_records
E = schema.audit_events


class PostgresAuditStore(PostgresStore, AuditStore):
    """An :class:`AuditStore` on the ``turn_records`` and ``audit_events`` tables.

    Every write is one INSERT (atomic on its own); duplicate keys and dangling turn
    references are caught by the table's constraints, so concurrent writers cannot
    slip past them.
    """

    def record_turn(self, turn: TurnRecord) -> TurnRecord:
        stored = prepare_turn(turn, self._clock())
        with translated(), self._engine.begin() as conn:
            conn.execute(T.insert().values(**stored.model_dump()))
        return stored

    def get_turn(self, tenant_id: UUID | str, turn_id: UUID | str) -> TurnRecord | None:
        tenant = parse_id(tenant_id, "tenant_id")
        tid = parse_id(turn_id, "turn_id")
        query = sa.select(T).where(T.c.tenant_id == tenant, T.c.id == tid)
        rows = self._fetch(query)
        return TurnRecord.model_validate(rows[0]) if rows else None

    def list_turns_by_session(
        self,
        tenant_id: UUID | str,
        session_id: UUID | str,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[TurnRecord]:
        tenant = parse_id(tenant_id, "tenant_id")
        session = parse_id(session_id, "session_id")
        check_limit(limit)
        after = parse_turn_cursor(cursor)
        query = sa.select(T).where(T.c.tenant_id == tenant, T.c.session_id == session)
        if after is not None:
            query = query.where(T.c.turn_number > after)
        rows = self._fetch(query.order_by(T.c.turn_number).limit(limit + 1))
        items = [TurnRecord.model_validate(r) for r in rows[:limit]]
        next_cursor = encode_cursor(items[-1].turn_number) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    def list_turns(
        self,
        tenant_id: UUID | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[TurnRecord]:
        tenant = parse_id(tenant_id, "tenant_id")
        start, end = time_range(since, until)
        check_limit(limit)
        after = parse_time_cursor(cursor)
        query = sa.select(T).where(T.c.tenant_id == tenant)
        rows = self._fetch(_newest_first(query, T, start, end, after, limit))
        items = [TurnRecord.model_validate(r) for r in rows[:limit]]
        return Page(items=items, next_cursor=_next(items, len(rows) > limit))

    def record_event(self, event: AuditEvent) -> AuditEvent:
        stored = prepare_event(event, self._clock())
        with translated(), self._engine.begin() as conn:
            conn.execute(E.insert().values(**stored.model_dump()))
        return stored

    def get_event(self, tenant_id: UUID | str, event_id: UUID | str) -> AuditEvent | None:
        tenant = parse_id(tenant_id, "tenant_id")
        eid = parse_id(event_id, "event_id")
        rows = self._fetch(sa.select(E).where(E.c.tenant_id == tenant, E.c.id == eid))
        return AuditEvent.model_validate(rows[0]) if rows else None

    def list_events(
        self,
        tenant_id: UUID | str,
        *,
        event_type: str | Sequence[str] | None = None,
        session_id: UUID | str | None = None,
        turn_id: UUID | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        tenant = parse_id(tenant_id, "tenant_id")
        types = event_types(event_type)
        session = parse_id(session_id, "session_id") if session_id is not None else None
        turn = parse_id(turn_id, "turn_id") if turn_id is not None else None
        start, end = time_range(since, until)
        check_limit(limit)
        after = parse_time_cursor(cursor)
        query = sa.select(E).where(E.c.tenant_id == tenant)
        if types is not None:
            query = query.where(E.c.event_type.in_(types))
        if session is not None:
            query = query.where(E.c.session_id == session)
        if turn is not None:
            query = query.where(E.c.turn_id == turn)
        rows = self._fetch(_newest_first(query, E, start, end, after, limit))
        items = [AuditEvent.model_validate(r) for r in rows[:limit]]
        return Page(items=items, next_cursor=_next(items, len(rows) > limit))

    def _fetch(self, query: sa.Select[Any]) -> list[dict[str, Any]]:
        with translated(), self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def _newest_first(
    query: sa.Select[Any],
    table: sa.Table,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> sa.Select[Any]:
    if start is not None:
        query = query.where(table.c.created_at >= start)
    if end is not None:
        query = query.where(table.c.created_at < end)
    if after is not None:
        query = query.where(sa.tuple_(table.c.created_at, table.c.id) < sa.tuple_(*after))
    return query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)


def _next(items: Sequence[TurnRecord | AuditEvent], more: bool) -> str | None:
    return time_cursor(items[-1].created_at, items[-1].id) if more else None

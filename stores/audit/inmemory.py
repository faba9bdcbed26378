"""The in-memory audit store: the reference behaviour every other backend must match."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

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
from stores.common import Clock, Page, check_limit, encode_cursor, parse_id, utc_now
from stores.errors import DuplicateError, NotFoundError

R = TypeVar("R", TurnRecord, AuditEvent)


class InMemoryAuditStore(AuditStore):
    """A thread-safe, process-local :class:`AuditStore`; for tests, demos and development."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._turns: dict[tuple[UUID, UUID], TurnRecord] = {}
        self._turn_keys: set[tuple[UUID, UUID, int]] = set()
        self._events: dict[tuple[UUID, UUID], AuditEvent] = {}

    def record_turn(self, turn: TurnRecord) -> TurnRecord:
        stored = prepare_turn(turn, self._clock())
        with self._lock:
            key = (stored.tenant_id, stored.session_id, stored.turn_number)
            if key in self._turn_keys:
                raise DuplicateError(
                    f"session {stored.session_id} already has turn {stored.turn_number}"
                )
            if any(k[1] == stored.id for k in self._turns):
                raise DuplicateError(f"turn record {stored.id} already exists")
            self._turns[(stored.tenant_id, stored.id)] = stored
            self._turn_keys.add(key)
        return stored.model_copy(deep=True)

    def get_turn(self, tenant_id: UUID | str, turn_id: UUID | str) -> TurnRecord | None:
        tenant = parse_id(tenant_id, "tenant_id")
        tid = parse_id(turn_id, "turn_id")
        with self._lock:
            found = self._turns.get((tenant, tid))
            return found.model_copy(deep=True) if found else None

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
        with self._lock:
            rows = sorted(
                (
                    t
                    for t in self._turns.values()
                    if t.tenant_id == tenant
                    and t.session_id == session
                    and (after is None or t.turn_number > after)
                ),
                key=lambda t: t.turn_number,
            )[: limit + 1]
            items = [t.model_copy(deep=True) for t in rows[:limit]]
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
        with self._lock:
            rows = [t for t in self._turns.values() if t.tenant_id == tenant]
            return _newest_first(rows, start, end, after, limit)

    def record_event(self, event: AuditEvent) -> AuditEvent:
        stored = prepare_event(event, self._clock())
        with self._lock:
            if any(k[1] == stored.id for k in self._events):
                raise DuplicateError(f"audit event {stored.id} already exists")
            if stored.turn_id is not None and (stored.tenant_id, stored.turn_id) not in self._turns:
                raise NotFoundError(f"turn record {stored.turn_id} does not exist")
            self._events[(stored.tenant_id, stored.id)] = stored
        return stored.model_copy(deep=True)

    def get_event(self, tenant_id: UUID | str, event_id: UUID | str) -> AuditEvent | None:
        tenant = parse_id(tenant_id, "tenant_id")
        eid = parse_id(event_id, "event_id")
        with self._lock:
            found = self._events.get((tenant, eid))
            return found.model_copy(deep=True) if found else None

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
        checks: list[Callable[[AuditEvent], bool]] = [lambda e: e.tenant_id == tenant]
        if types is not None:
            checks.append(lambda e: e.event_type in types)
        if session is not None:
            checks.append(lambda e: e.session_id == session)
        if turn is not None:
            checks.append(lambda e: e.turn_id == turn)
        with self._lock:
            rows = [e for e in self._events.values() if all(c(e) for c in checks)]
            return _newest_first(rows, start, end, after, limit)


def _newest_first(
    rows: Iterable[R],
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> Page[R]:
    """Order by (created_at, id) descending, keep the range, and cut one page."""
    picked = sorted(
        (
            r
            for r in rows
            if (start is None or r.created_at >= start)
            and (end is None or r.created_at < end)
            and (after is None or (r.created_at, r.id) < after)
        ),
        key=lambda r: (r.created_at, r.id),
        reverse=True,
    )[: limit + 1]
    items = [r.model_copy(deep=True) for r in picked[:limit]]
    next_cursor = time_cursor(items[-1].created_at, items[-1].id) if len(picked) > limit else None
    return Page(items=items, next_cursor=next_cursor)

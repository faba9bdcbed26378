"""The in-memory audit store: the reference behaviour every other backend must match."""

from __future__ import annotations

import threading
from uuid import UUID

from stores.audit.models import AuditEvent, TurnRecord
from stores.audit.store import AuditStore
from stores.audit.validation import Listing, R, created_key
from stores.common import Clock, utc_now
from stores.errors import DuplicateError, NotFoundError


class InMemoryAuditStore(AuditStore):
    """A thread-safe, process-local :class:`AuditStore`; for tests, demos and development."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._turns: dict[tuple[UUID, UUID], TurnRecord] = {}
        self._turn_keys: set[tuple[UUID, UUID, int]] = set()
        self._events: dict[tuple[UUID, UUID], AuditEvent] = {}

    def _insert_turn(self, turn: TurnRecord) -> TurnRecord:
        with self._lock:
            key = (turn.tenant_id, turn.session_id, turn.turn_number)
            if key in self._turn_keys:
                raise DuplicateError(
                    f"session {turn.session_id} already has turn {turn.turn_number}"
                )
            if any(k[1] == turn.id for k in self._turns):
                raise DuplicateError(f"turn record {turn.id} already exists")
            self._turns[(turn.tenant_id, turn.id)] = turn
            self._turn_keys.add(key)
        return turn.model_copy(deep=True)

    def _insert_event(self, event: AuditEvent) -> AuditEvent:
        with self._lock:
            if any(k[1] == event.id for k in self._events):
                raise DuplicateError(f"audit event {event.id} already exists")
            if event.turn_id is not None and (event.tenant_id, event.turn_id) not in self._turns:
                raise NotFoundError(f"turn record {event.turn_id} does not exist")
            self._events[(event.tenant_id, event.id)] = event
        return event.model_copy(deep=True)

    def _table(self, kind: type[R]) -> dict[tuple[UUID, UUID], R]:
        return self._turns if kind is TurnRecord else self._events  # type: ignore[return-value]

    def _get(self, kind: type[R], tenant_id: UUID, item_id: UUID) -> R | None:
        with self._lock:
            found = self._table(kind).get((tenant_id, item_id))
            return found.model_copy(deep=True) if found else None

    def _session_turns(
        self, tenant_id: UUID, session_id: UUID, after: int | None, limit: int
    ) -> list[TurnRecord]:
        with self._lock:
            rows = sorted(
                (
                    t
                    for t in self._turns.values()
                    if t.tenant_id == tenant_id
                    and t.session_id == session_id
                    and (after is None or t.turn_number > after)
                ),
                key=lambda t: t.turn_number,
            )
            return [t.model_copy(deep=True) for t in rows[: limit + 1]]

    def _newest(self, listing: Listing[R]) -> list[R]:
        with self._lock:
            rows = [r for r in self._table(listing.kind).values() if listing.matches(r)]
            rows.sort(key=created_key, reverse=True)
            return [r.model_copy(deep=True) for r in rows[: listing.limit + 1]]

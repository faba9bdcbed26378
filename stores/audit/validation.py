"""Input checks and parsed listings shared by every audit backend, so they refuse alike.

Records arrive here already validated by the interface's argument parsing
(:mod:`stores.common.arguments`): these are the checks a model's own fields cannot make.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from stores.audit.models import MAX_EVENT_TYPE_LENGTH, AuditEvent, TurnRecord
from stores.common import check_limit, check_text, parse_id
from stores.common.checks import check_int32
from stores.common.keyset import TIME_KEY, TimeKey, cursor_key
from stores.common.payload import check_aware, check_json
from stores.errors import InvalidInputError

R = TypeVar("R", TurnRecord, AuditEvent)

TURN_JSON_FIELDS = (
    "context_extracted",
    "rules_matched",
    "scenario_state",
    "tools_executed",
    "token_usage",
)


def prepare_turn(turn: TurnRecord, now: datetime) -> TurnRecord:
    """Check a turn record and return the copy to store, stamped with ``now``."""
    check_text(turn.user_message, "user_message")
    check_text(turn.assistant_response, "assistant_response")
    # Both are PostgreSQL ``integer`` columns.
    check_int32(turn.turn_number, "turn_number", 0)
    if turn.latency_ms is not None:
        check_int32(turn.latency_ms, "latency_ms", 0)
    for name in TURN_JSON_FIELDS:
        check_json(getattr(turn, name), name)
    return turn.model_copy(update={"created_at": now})


def prepare_event(event: AuditEvent, now: datetime) -> AuditEvent:
    """Check an audit event and return the copy to store, stamped with ``now``."""
    check_text(event.event_type, "event_type", MAX_EVENT_TYPE_LENGTH)
    check_json(event.event_data, "event_data")
    return event.model_copy(update={"created_at": now})


def event_types(value: str | Sequence[str] | None) -> list[str] | None:
    """Normalize the ``event_type`` filter to a list (None means every type)."""
    if value is None:
        return None
    if not isinstance(value, (str, Iterable)):
        raise InvalidInputError("event_type must be text or a list of text", field="event_type")
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str):
            raise InvalidInputError("event_type must be text", field="event_type")
        check_text(item, "event_type", MAX_EVENT_TYPE_LENGTH)
    return items


@dataclass(frozen=True)
class Listing(Generic[R]):
    """A parsed newest-first listing of one kind of record: the tenant's records created in
    ``[since, until)`` and after the cursor's ``(created_at, id)``, narrowed by the event
    filters (which only audit events have), at most ``limit`` of them."""

    kind: type[R]
    tenant_id: UUID
    since: datetime | None
    until: datetime | None
    after: TimeKey | None
    limit: int
    event_types: list[str] | None = None
    session_id: UUID | None = None
    turn_id: UUID | None = None

    def matches(self, record: TurnRecord | AuditEvent) -> bool:
        """True if ``record`` belongs in this listing (the cursor included)."""
        if isinstance(record, AuditEvent) and not (
            (self.event_types is None or record.event_type in self.event_types)
            and (self.turn_id is None or record.turn_id == self.turn_id)
        ):
            return False
        return (
            record.tenant_id == self.tenant_id
            and (self.since is None or record.created_at >= self.since)
            and (self.until is None or record.created_at < self.until)
            and (self.after is None or created_key(record) < self.after)
            and (self.session_id is None or record.session_id == self.session_id)
        )


def newest_first(
    kind: type[R],
    tenant_id: UUID | str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    *,
    event_types: list[str] | None = None,
    session_id: UUID | None = None,
    turn_id: UUID | None = None,
) -> Listing[R]:
    """Parse the arguments of a newest-first listing (the event filters come parsed)."""
    tenant = parse_id(tenant_id, "tenant_id")
    start, end = check_aware(since, "since"), check_aware(until, "until")
    check_limit(limit)
    after = cursor_key(cursor, TIME_KEY)
    return Listing(kind, tenant, start, end, after, limit, event_types, session_id, turn_id)


def created_key(record: TurnRecord | AuditEvent) -> TimeKey:
    """The sort key of a newest-first listing, from which its cursors are made."""
    return record.created_at, record.id

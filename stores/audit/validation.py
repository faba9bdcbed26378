"""Input checks and cursor helpers shared by every audit backend, so they refuse alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from stores.audit.models import MAX_EVENT_TYPE_LENGTH, AuditEvent, TurnRecord
from stores.common import check_text, decode_cursor, encode_cursor
from stores.common.checks import check_int32
from stores.common.payload import check_aware, check_json, revalidate
from stores.errors import InvalidInputError

TURN_JSON_FIELDS = (
    "context_extracted",
    "rules_matched",
    "scenario_state",
    "tools_executed",
    "token_usage",
)


def prepare_turn(turn: TurnRecord, now: datetime) -> TurnRecord:
    """Check a turn record and return the copy to store, stamped with ``now``."""
    if not isinstance(turn, TurnRecord):
        raise InvalidInputError("turn must be a TurnRecord", field="turn")
    turn = revalidate(turn)
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
    if not isinstance(event, AuditEvent):
        raise InvalidInputError("event must be an AuditEvent", field="event")
    event = revalidate(event)
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


def time_range(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """Check a half-open ``[since, until)`` range of aware datetimes."""
    return check_aware(since, "since"), check_aware(until, "until")


def time_cursor(created_at: datetime, item_id: UUID) -> str:
    """The cursor after an item in a newest-first listing."""
    return encode_cursor(created_at, item_id)


def parse_time_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    """Decode a cursor made by :func:`time_cursor`."""
    if cursor is None:
        return None
    raw = decode_cursor(cursor, 2)
    try:
        when = datetime.fromisoformat(raw[0])
        after = UUID(raw[1])
    except (TypeError, ValueError, AttributeError):
        raise InvalidInputError("cursor is not valid", field="cursor") from None
    aware = check_aware(when, "cursor")
    assert aware is not None
    return aware, after


def parse_turn_cursor(cursor: str | None) -> int | None:
    """Decode a cursor of a by-session listing (the last turn number seen)."""
    if cursor is None:
        return None
    raw: Any = decode_cursor(cursor, 1)[0]
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidInputError("cursor is not valid", field="cursor")
    return raw

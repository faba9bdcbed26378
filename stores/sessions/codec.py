"""Turning a session into the bytes every backend stores, with the checks all backends share.

Every backend stores the same JSON document, so a session that one backend accepts the others
accept too: the checks run here, before any backend is touched.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from uuid import UUID

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from stores.common.keyset import as_uuid, cursor_key, page_of
from stores.common.pagination import Page
from stores.common.payload import check_json
from stores.common.validation import parse_id
from stores.errors import InvalidInputError, describe
from stores.sessions.models import Session

DEFAULT_MAX_BYTES = 1024 * 1024
"""The largest stored session (its JSON document, in bytes) unless a store is told otherwise."""

_SERIALIZER = Session.__pydantic_serializer__
_VALIDATOR = Session.__pydantic_validator__


def encode(session: Session, max_bytes: int) -> tuple[Session, bytes]:
    """Validate ``session`` and return a clean copy with its JSON document.

    Fields assigned after construction skip pydantic's checks, so the fields are validated
    again here (nested models are validated again by their own configuration), and the
    serializer refuses any value of the wrong type: a bad status, id or step comes out as
    InvalidInputError. The copy may share nested values with ``session``.
    """
    if not isinstance(session, Session):
        raise InvalidInputError(f"expected a Session; got {describe(session)}", field="session")
    try:
        clean = _VALIDATOR.validate_python(session.__dict__)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "session"
        raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None
    try:
        data = _SERIALIZER.to_json(clean, warnings="error")
    except PydanticSerializationError as exc:
        raise InvalidInputError(f"session is not serialisable: {exc}", field="session") from None
    if len(data) > max_bytes:
        raise InvalidInputError(
            f"session is {len(data)} bytes as JSON; the limit is {max_bytes}", field="session"
        )
    if b"\\u0000" in data:
        # PostgreSQL jsonb cannot hold NUL: refusing it everywhere keeps the tiers alike.
        check_json(json.loads(data), "session", max_bytes)
    return clean, data


def decode(data: bytes | str) -> Session:
    """Parse a stored JSON document back into a Session."""
    return Session.model_validate_json(data)


def stamp(session: Session, *, version: int, created_at: datetime, now: datetime) -> Session:
    """A copy of ``session`` with the store-owned fields set (no re-validation needed)."""
    return session.model_copy(
        update={"version": version, "created_at": created_at, "last_activity_at": now}
    )


def is_expired(created_at: datetime, now: datetime, max_age: timedelta) -> bool:
    """A session expires when its age, counted from ``created_at``, reaches ``max_age``."""
    return created_at + max_age <= now


def listing_key(session: Session) -> tuple[str]:
    """The sort key of listings: the id as text, which orders like PostgreSQL's uuid."""
    return (str(session.id),)


def page(items: list[Session], limit: int) -> Page[Session]:
    """A page from up to ``limit + 1`` sessions in listing order."""
    return page_of(items, limit, listing_key)


def after_id(cursor: str | None) -> str | None:
    """The id (as text) a page starts after; a malformed cursor is InvalidInputError."""
    key = cursor_key(cursor, (as_uuid,))
    return None if key is None else str(key[0])


def check_max_bytes(max_bytes: int) -> int:
    """Validate a store's ``max_bytes`` setting."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
        raise InvalidInputError(f"max_bytes must be an integer >= 1024; got {max_bytes!r}")
    return max_bytes


def check_durations(hot_ttl: timedelta, max_age: timedelta) -> None:
    """Validate a store's ``hot_ttl`` and ``max_age`` settings."""
    for name, value in (("hot_ttl", hot_ttl), ("max_age", max_age)):
        if not isinstance(value, timedelta) or value <= timedelta(0):
            raise InvalidInputError(f"{name} must be a positive timedelta; got {value!r}")


def parse_ids(tenant_id: UUID | str, session_id: UUID | str) -> tuple[UUID, UUID]:
    """Parse a (tenant id, session id) pair."""
    return parse_id(tenant_id, "tenant_id"), parse_id(session_id, "session_id")

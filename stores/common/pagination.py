"""Keyset pagination: a page of items and an opaque cursor to the next one."""

from __future__ import annotations

import base64
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from stores.errors import InvalidInputError

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*values: Any) -> str:
    """Encode the sort key of the last item of a page as an opaque cursor."""
    raw = json.dumps([_plain(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """Decode a cursor made by :func:`encode_cursor`; a malformed one is InvalidInputError."""
    if not isinstance(cursor, str):
        raise InvalidInputError("cursor must be text", field="cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cursor is not valid: {cursor[:40]!r}", field="cursor") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidInputError(f"cursor is not valid: {cursor[:40]!r}", field="cursor")
    return values


def _plain(value: Any) -> Any:
    """Make cursor values JSON-friendly (datetimes and UUIDs as strings)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return str(value)

"""Typed keyset cursors: decode a cursor back into the sort key it was made from.

A backend lists items ordered by a key such as ``(created_at, id)``; the cursor of a page is
the key of its last item (:func:`~stores.common.pagination.encode_cursor`). Here the key is
decoded with one converter per column, so that a tampered cursor is an InvalidInputError, and
:func:`paginate` gives in-memory backends the same pages a database gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from stores.common.pagination import Page, decode_cursor, encode_cursor
from stores.common.validation import check_limit
from stores.errors import InvalidInputError

T = TypeVar("T")

Converter = Callable[[Any], Any]


def as_datetime(value: Any) -> datetime:
    """A cursor column holding a timezone-aware datetime."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive datetime")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01 at +05:00 parses, yet falls before year 1 in UTC: no row sorts after it.
        raise ValueError("out of range in UTC") from None


def as_uuid(value: Any) -> UUID:
    """A cursor column holding a UUID."""
    return UUID(value)


def as_str(value: Any) -> str:
    """A cursor column holding text (never NUL, which no stored text holds)."""
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a string of text")
    return value


def as_int(value: Any) -> int:
    """A cursor column holding an integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not an integer")
    return value


TimeKey = tuple[datetime, UUID]
"""The sort key of a listing ordered by a timestamp, ties broken by id."""

TIME_KEY: tuple[Converter, Converter] = (as_datetime, as_uuid)
"""The converters that decode a :data:`TimeKey` cursor."""


def cursor_key(cursor: str | None, kinds: Sequence[Converter]) -> tuple[Any, ...] | None:
    """Decode ``cursor`` into a typed key (None for the first page)."""
    if cursor is None:
        return None
    values = decode_cursor(cursor, len(kinds))
    try:
        return tuple(kind(v) for kind, v in zip(kinds, values, strict=True))
    except (TypeError, ValueError):
        raise InvalidInputError(f"cursor is not valid: {cursor[:40]!r}", field="cursor") from None


def page_of(items: list[T], limit: int, key: Callable[[T], tuple[Any, ...]]) -> Page[T]:
    """Make a page from up to ``limit + 1`` fetched items (the extra one means "more")."""
    if len(items) > limit:
        items = items[:limit]
        return Page[T](items=items, next_cursor=encode_cursor(*key(items[-1])))
    return Page[T](items=items, next_cursor=None)


def paginate(
    items: Iterable[T],
    key: Callable[[T], tuple[Any, ...]],
    *,
    limit: int,
    cursor: str | None,
    kinds: Sequence[Converter],
    descending: bool = False,
) -> Page[T]:
    """One page of ``items`` sorted by ``key``, starting after ``cursor``."""
    check_limit(limit)
    after = cursor_key(cursor, kinds)
    ordered = sorted(items, key=key, reverse=descending)
    if after is not None:
        if descending:
            ordered = [item for item in ordered if key(item) < after]
        else:
            ordered = [item for item in ordered if key(item) > after]
    return page_of(ordered[: limit + 1], limit, key)

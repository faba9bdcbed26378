"""Checks for JSON payloads and timestamps that every backend stores alike.

PostgreSQL ``jsonb`` refuses NaN, infinities and NUL characters that a Python dict happily
holds; refusing them before any backend is touched keeps the in-memory reference and the
database backends in step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ValidationError

from stores.errors import InvalidInputError, describe

MAX_JSON_BYTES = 1_000_000
"""The largest serialized JSON payload (in bytes) a single field may hold."""

M = TypeVar("M", bound=BaseModel)


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01 at +05:00 is a valid datetime, yet in UTC it falls before year 1.
        raise ValueError(f"{value.isoformat()} is out of range once converted to UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A model field type: a timezone-aware datetime, normalized to UTC; naive ones are refused,
and so are those that fall outside years 1 to 9999 once in UTC."""


def check_json(value: Any, field: str, max_bytes: int = MAX_JSON_BYTES) -> None:
    """Reject values that are not plain JSON, hold NaN/inf or NUL, or are too large."""
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{field} is not valid JSON data: {exc}", field=field) from None
    if len(text.encode()) > max_bytes:
        raise InvalidInputError(
            f"{field} is {len(text.encode())} bytes as JSON; the limit is {max_bytes}",
            field=field,
        )
    if "\\u0000" in text and _holds(value, lambda s: "\x00" in s):
        raise InvalidInputError(f"{field} contains a NUL character", field=field)
    check_unicode(value, text, field)


def check_unicode(value: Any, text: str, field: str) -> None:
    """Reject JSON ``value`` (serialized as ``text``) holding text that is not valid Unicode.

    Lone surrogates are serialized as ``\\udXXX`` escapes; PostgreSQL's jsonb refuses them.
    """
    if "\\ud" in text and _holds(value, _not_unicode):
        raise InvalidInputError(f"{field} contains text that is not valid Unicode", field=field)


def _not_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _holds(value: Any, bad: Callable[[str], bool]) -> bool:
    """Whether any text in ``value`` (keys included) is ``bad``."""
    if isinstance(value, str):
        return bad(value)
    if isinstance(value, dict):
        return any(_holds(k, bad) or _holds(v, bad) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds(v, bad) for v in value)
    return False


def check_aware(value: datetime | None, field: str) -> datetime | None:
    """Return ``value`` in UTC; a naive or non-datetime value is InvalidInputError."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{field} must be a datetime; got {describe(value)}", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{field} must be timezone-aware; got {value!r}", field=field)
    try:
        return _to_utc(value)
    except ValueError as exc:
        raise InvalidInputError(f"{field}: {exc}", field=field) from None


def revalidate(model: M) -> M:
    """Validate ``model`` again; copies made with ``model_copy(update=...)`` skip validation.

    A failure is InvalidInputError naming the first bad field.
    """
    try:
        return type(model).model_validate(model.model_dump())
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None

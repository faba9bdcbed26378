"""Input checks every store applies before it touches a backend.

Each failure is an :class:`InvalidInputError` naming the field and what was wrong, raised
before anything is written.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from enum import Enum
from typing import TypeVar
from uuid import UUID

from stores.errors import InvalidInputError, describe

DEFAULT_EMBEDDING_DIMENSIONS = 1536
"""The embedding dimension used when none is configured."""

MAX_LIMIT = 1000
"""The largest page or search size a single call may ask for."""

MAX_TEXT_LENGTH = 100_000
"""The longest text (in characters) a single field may hold."""

E = TypeVar("E", bound=Enum)


def parse_id(value: UUID | str, field: str) -> UUID:
    """Return ``value`` as a UUID, or raise InvalidInputError naming ``field``."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidInputError(f"{field} is not a valid UUID: {describe(value)}", field=field)


def parse_enum(enum_cls: type[E], value: E | str, field: str) -> E:
    """Return ``value`` as a member of ``enum_cls``; unknown values raise InvalidInputError."""
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum_cls)
        raise InvalidInputError(
            f"{field} must be one of {allowed}; got {describe(value)}", field=field
        ) from None


def validate_embedding(
    embedding: Sequence[float] | None, dimensions: int, field: str = "embedding"
) -> list[float] | None:
    """Check an embedding's length and that every component is a finite number.

    A ``vector`` column holds float32: a component beyond its range, or a vector that
    rounds to all zeros there, is refused too, as PostgreSQL would store it broken.
    """
    if embedding is None:
        return None
    if len(embedding) != dimensions:
        raise InvalidInputError(
            f"{field} has {len(embedding)} dimensions; this store expects {dimensions}",
            field=field,
        )
    out: list[float] = []
    for i, x in enumerate(embedding):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise InvalidInputError(f"{field}[{i}] is not a number: {describe(x)}", field=field)
        try:
            value = float(x)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value) or math.isinf(array("f", (value,))[0]):
            raise InvalidInputError(
                f"{field}[{i}] is {describe(x)}; components must be finite float32 numbers",
                field=field,
            )
        out.append(value)
    if not any(array("f", out)):
        raise InvalidInputError(
            f"{field} is the zero vector; cosine similarity is undefined for it", field=field
        )
    return out


def check_text(value: str | None, field: str, max_length: int = MAX_TEXT_LENGTH) -> None:
    """Reject a value that is not text, text longer than ``max_length`` characters, or
    text holding NUL or a lone surrogate (neither can reach PostgreSQL)."""
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be text; got {describe(value)}", field=field)
    if len(value) > max_length:
        raise InvalidInputError(
            f"{field} is {len(value)} characters; the limit is {max_length}", field=field
        )
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL; refusing it everywhere keeps backends alike.
        raise InvalidInputError(f"{field} contains a NUL character", field=field)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate: no UTF-8 form, so PostgreSQL could not be sent it.
            raise InvalidInputError(f"{field} is not valid Unicode text", field=field) from None


def check_limit(limit: int, field: str = "limit") -> int:
    """Return ``limit`` if it is between 1 and MAX_LIMIT, else raise InvalidInputError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(
            f"{field} must be an integer from 1 to {MAX_LIMIT}; got {describe(limit)}",
            field=field,
        )
    return limit

"""More input checks shared by store domains: JSON documents, names, 32-bit integers."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pydantic import BaseModel

from stores.common.payload import check_unicode
from stores.common.validation import check_text
from stores.errors import InvalidInputError, describe

NAME_MAX_LENGTH = 200
"""The longest name or identifier-like text field, in characters."""

MAX_JSON_LENGTH = 1_000_000
"""The largest JSON document (serialized, in characters) a single field may hold."""

INT32_MAX = 2**31 - 1

M = TypeVar("M", bound=BaseModel)


def plain_json(value: Any, field: str) -> Any:
    """Return ``value`` as plain JSON (what PostgreSQL's JSONB gives back), or raise.

    Rejects what JSONB cannot hold (NaN, infinities, NUL characters, non-JSON objects) and
    documents over :data:`MAX_JSON_LENGTH`.
    """
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{field} is not valid JSON: {exc}", field=field) from None
    if len(text) > MAX_JSON_LENGTH:
        raise InvalidInputError(
            f"{field} is {len(text)} characters of JSON; the limit is {MAX_JSON_LENGTH}",
            field=field,
        )
    if "\\u0000" in text:
        raise InvalidInputError(f"{field} contains a NUL character", field=field)
    check_unicode(value, text, field)
    return json.loads(text)


def with_plain_json(model: M, *names: str) -> M:
    """A deep copy of ``model`` with its JSON fields ``names`` made plain (see
    :func:`plain_json`), each refused by its own name."""
    update = {name: plain_json(getattr(model, name), name) for name in names}
    return model.model_copy(update=update, deep=True)


def check_int32(value: int, field: str, minimum: int = -INT32_MAX - 1) -> None:
    """Reject integers outside PostgreSQL's ``integer`` range (or below ``minimum``)."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= INT32_MAX:
        raise InvalidInputError(
            f"{field} must be an integer from {minimum} to {INT32_MAX}; got {value!r}",
            field=field,
        )


def check_fraction(value: float, field: str) -> None:
    """Reject numbers that are not finite or outside 0..1."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
        raise InvalidInputError(f"{field} must be a number from 0 to 1; got {value!r}", field=field)


def check_name(value: Any, field: str = "name", max_length: int = NAME_MAX_LENGTH) -> str:
    """A name, checked: text, not empty, at most ``max_length`` characters, no NUL (the
    configuration's names take :data:`NAME_MAX_LENGTH`; profiles' channels, field names,
    external ids and asset types their own, longer limit)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be text; got {describe(value)}", field=field)
    if not value:
        raise InvalidInputError(f"{field} must not be empty", field=field)
    check_text(value, field, max_length)
    return value

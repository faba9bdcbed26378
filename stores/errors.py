"""The errors every store raises.

Callers of hearth catch these, never a driver's own exceptions: each backend translates
``redis.*``, ``psycopg.*`` and ``sqlalchemy.*`` errors at its edge and keeps the original
as ``__cause__``. After any of them, nothing is half-written.
"""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """A store operation failed."""


class NotFoundError(StoreError):
    """The item does not exist, was deleted, or belongs to another tenant."""


class ConflictError(StoreError):
    """The item changed since it was read (optimistic lock lost); re-read and retry."""

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class DuplicateError(StoreError):
    """An item with the same unique key already exists."""


class InvalidInputError(StoreError, ValueError):
    """The input is malformed: a bad id, a wrong embedding, an unknown enum value, too large."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CorruptDataError(StoreError):
    """A stored item cannot be read back: it was stored before a check that now refuses it,
    or was damaged. The message names the item when it can; the cause says what failed."""


class StoreUnavailableError(StoreError):
    """The backing server cannot be reached, timed out, or went away; retry later."""


def describe(value: Any, limit: int = 60) -> str:
    """Return a short repr of ``value`` for an error message, never the whole payload."""
    try:
        text = repr(value)
    except ValueError:
        # An integer of more digits than Python converts to text (sys.get_int_max_str_digits).
        return f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""Turning a session into the bytes every backend stores, with the checks all backends share.

Every backend stores the same JSON document, so a session that one backend accepts the others
accept too: the checks run here, before any backend is touched. A document :func:`encode`
accepts is one every tier can hold and :func:`decode` turns back into an equal session:

* integers that land in typed columns fit them: the model bounds ``version`` to a ``bigint``
  and scenario versions and turn numbers to an ``integer`` (the cold tier's
  ``active_scenario_version``, the configuration and audit stores' columns);
* numbers in ``variables`` come back as they went in: pydantic's JSON parser refuses integers
  of more than :data:`MAX_INT_DIGITS` digits, and PostgreSQL's ``jsonb`` gives floats of
  :data:`MAX_FLOAT` or more back as integers and ``-0.0`` back as ``0.0``;
* ``variables`` nest no deeper than :data:`MAX_JSON_DEPTH`, far below where pydantic's JSON
  parser (about 200 levels) and PostgreSQL's ``jsonb`` parser (thousands) give up;
* text is valid Unicode without NUL, which ``jsonb`` refuses.

The checks on ``variables`` walk them once, in Python, after pydantic has validated them: a
few microseconds on a save, where parsing the whole document again would cost several times
more.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from stores.common.keyset import as_uuid, cursor_key, page_of
from stores.common.pagination import Page
from stores.common.payload import check_json
from stores.common.validation import parse_id
from stores.errors import CorruptDataError, InvalidInputError, describe
from stores.sessions.models import MAX_VERSION, STORED, Session

DEFAULT_MAX_BYTES = 1024 * 1024
"""The largest stored session (its JSON document, in bytes) unless a store is told otherwise."""

MAX_SAVED_VERSION = MAX_VERSION - 1
"""The highest ``version`` a caller may hand to ``save``, which stores ``version + 1``."""

MAX_JSON_DEPTH = 64
"""How deeply arrays and objects may nest inside one variable's value (``[[1]]`` is 2 deep)."""

MAX_INT_DIGITS = 4300
"""The most digits of an integer in ``variables``; pydantic's JSON parser refuses more."""

MAX_FLOAT = 1e16
"""Floats in ``variables`` must be smaller in magnitude: larger ones are written ``1e+16``,
which PostgreSQL's ``jsonb`` keeps as an exact decimal and gives back as an integer."""

_INT_BOUND = 10**MAX_INT_DIGITS
_SERIALIZER = Session.__pydantic_serializer__
_VALIDATOR = Session.__pydantic_validator__
# Both pydantic's output and PostgreSQL's (keys sorted by length) put the session id first.
_LEADING_ID = re.compile(rb'\s*\{\s*"id"\s*:\s*"([0-9a-fA-F-]{32,36})"')


class _Refused(Exception):
    """A value in ``variables`` some tier cannot hold; ``path`` grows as it unwinds."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def store_fields(session: Session) -> tuple[int, datetime]:
    """The ``version`` and ``created_at`` a save starts from, checked before they are used.

    ``version`` must leave room for the ``version + 1`` the store writes; the other fields are
    checked by :func:`encode`.
    """
    if not isinstance(session, Session):
        raise InvalidInputError(f"expected a Session; got {describe(session)}", field="session")
    version, created = session.version, session.created_at
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInputError(
            f"version must be an integer; got {describe(version)}", field="version"
        )
    if not 0 <= version <= MAX_SAVED_VERSION:
        raise InvalidInputError(
            f"version must be from 0 to {MAX_SAVED_VERSION}; got {version}", field="version"
        )
    if not isinstance(created, datetime) or created.utcoffset() is None:
        raise InvalidInputError(
            f"created_at must be a timezone-aware datetime; got {describe(created)}",
            field="created_at",
        )
    return version, created


def encode(session: Session, max_bytes: int) -> tuple[Session, bytes]:
    """Validate ``session`` and return a clean copy with its JSON document.

    Fields assigned after construction skip pydantic's checks, so the fields are validated
    again here (nested models are validated again by their own configuration), and the
    serializer refuses any value of the wrong type: a bad status, id or step comes out as
    InvalidInputError naming the field. So does anything beyond the limits in the module
    docstring. A ``-0.0`` in ``variables`` is stored as ``0.0``, as PostgreSQL would store it,
    so that every tier gives back the same session. The copy may share nested values with
    ``session``.
    """
    if not isinstance(session, Session):
        raise InvalidInputError(f"expected a Session; got {describe(session)}", field="session")
    try:
        clean = _VALIDATOR.validate_python(session.__dict__)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if _check_variables(clean.variables):
        clean = clean.model_copy(update={"variables": _without_negative_zero(clean.variables)})
    try:
        data = _SERIALIZER.to_json(clean, warnings="error")
    except PydanticSerializationError as exc:
        # Text that is not valid Unicode (a lone surrogate) is the one known cause: name it.
        check_json(clean.variables, "variables", max_bytes)
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
    """Parse a stored JSON document back into a Session.

    Upper bounds on numbers that ``save`` now enforces are not applied here, so a session
    stored before them stays readable (a sweep that cannot move it quarantines it). A
    document that does not parse (damaged, or refused by the parser itself) is
    CorruptDataError naming the session when its id can be read; the parser's error is kept
    as the cause.
    """
    try:
        return Session.model_validate_json(data, context=STORED)
    except ValidationError as exc:
        raise _unreadable(data, exc) from exc


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


def _invalid(exc: ValidationError) -> InvalidInputError:
    """The InvalidInputError for pydantic's first complaint about a session."""
    first = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(p) for p in first["loc"]]
    message = first["msg"]
    if loc[:1] == ["variables"]:
        # Past the variable's name, pydantic's path names the JSON type tried at each level
        # ("list.0.dict.a.list...", hundreds of levels for a deep value): not worth keeping.
        loc = loc[:2]
        if first["type"] == "recursion_depth_exceeded":
            message = f"arrays and objects nest more than {MAX_JSON_DEPTH} deep"
    field = ".".join(loc) or "session"
    return InvalidInputError(f"{field}: {message}", field=field)


def _check_variables(variables: dict[str, Any]) -> bool:
    """Refuse variables some tier cannot hold or give back; True if one holds ``-0.0``."""
    for name in variables:
        if not name.isascii() and not _is_unicode(name):
            # pydantic writes such a name with replacement characters instead of failing.
            raise InvalidInputError(
                "variables: a variable's name is not valid Unicode text", field="variables"
            )
    try:
        return _check_values(variables, 0)
    except _Refused as exc:
        field = "variables" + exc.path.pop()
        where = _short_path(field + "".join(reversed(exc.path)))
        raise InvalidInputError(f"{where}: {exc.reason}", field=field) from None


def _check_values(container: dict[str, Any] | list[Any], depth: int) -> bool:
    """Raise _Refused for an item of ``container`` some tier cannot hold; True if one holds
    ``-0.0``. ``depth`` is how deep ``container`` sits in its variable (0 for ``variables``
    itself, 1 for a variable's own array or object).

    pydantic has already made every value a plain ``dict``, ``list``, ``str``, ``int``,
    ``float``, ``bool`` or None; exact type tests keep this loop cheap, as it runs on every
    save.
    """
    found = False
    item: Any = None
    try:
        for item in container.values() if type(container) is dict else container:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is float:
                if not -MAX_FLOAT < item < MAX_FLOAT:
                    raise _Refused(
                        f"{item!r} is a float of magnitude {MAX_FLOAT:g} or more, which "
                        "PostgreSQL gives back as an integer; store it as an int or as text"
                    )
                if item == 0.0 and math.copysign(1.0, item) < 0:
                    found = True
            elif kind is int:
                if not -_INT_BOUND < item < _INT_BOUND:
                    raise _Refused(
                        f"an integer of more than {MAX_INT_DIGITS} digits cannot be read back"
                    )
            elif depth >= MAX_JSON_DEPTH:
                raise _Refused(f"arrays and objects nest more than {MAX_JSON_DEPTH} deep")
            elif _check_values(item, depth + 1):
                found = True
    except _Refused as exc:
        exc.path.append(_step(container, item))
        raise
    return found


def _step(container: dict[str, Any] | list[Any], item: Any) -> str:
    """How a path goes from ``container`` to ``item``; found again only for a message."""
    if type(container) is dict:
        key = next(k for k, v in container.items() if v is item)
        return f".{key}"
    return f"[{next(i for i, v in enumerate(container) if v is item)}]"


def _without_negative_zero(value: Any) -> Any:
    """A copy of ``value`` with every ``-0.0`` replaced by ``0.0``."""
    if isinstance(value, float):
        return 0.0 if value == 0.0 else value
    if isinstance(value, dict):
        return {k: _without_negative_zero(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_negative_zero(v) for v in value]
    return value


def _short_path(path: str, limit: int = 100) -> str:
    """``path`` shortened for a message: the path to a deeply nested value is long."""
    return path if len(path) <= limit else path[: limit - 3] + "..."


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unreadable(data: bytes | str, exc: ValidationError) -> CorruptDataError:
    """The CorruptDataError for a stored document pydantic cannot read."""
    head = data[:200]
    found = _LEADING_ID.match(head.encode("utf-8", "replace") if isinstance(head, str) else head)
    what = f"session {found.group(1).decode()}" if found else "a stored session"
    first = exc.errors(include_url=False, include_input=False)[0]
    where = _short_path(".".join(str(p) for p in first["loc"]))
    detail = f"{where}: {first['msg']}" if where else first["msg"]
    return CorruptDataError(f"{what} cannot be read back: {detail}")

"""The schema check the workers run at start and on a schedule, and the refusal it can cause."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from workers import migrations
from workers.migrations import SchemaState, SchemaStatus

FIX_COMMAND = "hearth db upgrade"
"""The command that brings a database to head (``docker compose run --rm migrate`` in compose)."""

RECHECK_SECONDS = 2.0
"""How often a worker waiting at start for its database looks again."""


class SchemaNotReadyError(SystemExit):
    """The database is not ready for this code (schema behind, or unreachable); workers do not
    start on it.

    A ``SystemExit`` with status 1: a ``celery worker`` refused this way ends with the one
    sentence it logged, not a traceback. ``str()`` is that sentence.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 1


def check(database_url: str) -> SchemaStatus:
    """Compare the database's revision with this code's head (never raises)."""
    return migrations.status(database_url)


def describe(status: SchemaStatus) -> str:
    """One line for logs and ``hearth status``."""
    pending = len(status.pending)
    if status.state is SchemaState.CURRENT:
        return f"schema is at head ({status.head})"
    if status.state is SchemaState.BEHIND:
        return (
            f"schema is behind: at {status.current}, head is {status.head} "
            f"({pending} migration{'s' if pending != 1 else ''} pending); run `{FIX_COMMAND}`"
        )
    if status.state is SchemaState.UNINITIALIZED:
        return f"schema was never migrated ({pending} migrations pending); run `{FIX_COMMAND}`"
    if status.state is SchemaState.AHEAD:
        return f"schema is ahead of this code: {status.detail or status.current}; deploy newer code"
    return f"database unreachable: {status.detail}"


def as_result(status: SchemaStatus) -> dict[str, Any]:
    """The JSON the schema-check job returns and keeps for ``hearth status``."""
    return {
        "state": status.state.value,
        "current": status.current,
        "head": status.head,
        "pending": list(status.pending),
        "detail": status.detail,
        "message": describe(status),
    }


def refuses(status: SchemaStatus) -> bool:
    """Whether a worker must not start on this schema (behind, or never migrated)."""
    return status.state in (SchemaState.BEHIND, SchemaState.UNINITIALIZED)


def enforce(status: SchemaStatus, *, allow_behind: bool) -> None:
    """Raise SchemaNotReadyError when the schema is behind, unless ``allow_behind``."""
    if refuses(status) and not allow_behind:
        raise SchemaNotReadyError(
            f"refusing to start: {describe(status)}, or set HEARTH_ALLOW_BEHIND_SCHEMA=true "
            "to start anyway"
        )


def enforce_reachable(status: SchemaStatus, *, waited: float) -> None:
    """Raise SchemaNotReadyError when the database could not be reached in ``waited`` s."""
    if status.state is SchemaState.UNREACHABLE:
        raise SchemaNotReadyError(
            f"refusing to start: {describe(status)} (waited {waited:.0f} s); check "
            "HEARTH_DATABASE_URL and that the server is up, or raise "
            "HEARTH_DATABASE_START_WAIT_SECONDS"
        )


def check_reachable(
    database_url: str, *, wait_seconds: float, on_wait: Callable[[SchemaStatus], None]
) -> SchemaStatus:
    """:func:`check`, repeated while the database is unreachable, for up to ``wait_seconds``.

    ``on_wait`` is called once, with the first unreachable status, when the wait begins.
    """
    deadline = time.monotonic() + wait_seconds
    status = check(database_url)
    if status.state is SchemaState.UNREACHABLE and wait_seconds > 0:
        on_wait(status)
    while status.state is SchemaState.UNREACHABLE and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(RECHECK_SECONDS, left))
        status = check(database_url)
    return status

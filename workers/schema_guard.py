"""The schema check the workers run at start and on a schedule, and the refusal it can cause."""

from __future__ import annotations

from typing import Any

from workers import migrations
from workers.migrations import SchemaState, SchemaStatus

FIX_COMMAND = "hearth db upgrade"
"""The command that brings a database to head (``docker compose run --rm migrate`` in compose)."""


class SchemaNotReadyError(RuntimeError):
    """The database schema is older than this code; workers do not start on it."""


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

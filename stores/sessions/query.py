"""The listings a SessionStore answers, parsed once and shared by every backend.

A :class:`Query` names what a listing selects; each backend turns it into its own lookup (a
Redis index key, a SQL filter) and checks the sessions it finds with :meth:`Query.matches`,
so that a stale index entry can never leak a session that no longer qualifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from stores.common.validation import check_limit, check_text, parse_enum, parse_id
from stores.errors import InvalidInputError, describe
from stores.sessions.codec import after_id
from stores.sessions.models import (
    MAX_IDENTIFIER_LENGTH,
    MAX_SCENARIO_VERSION,
    PendingMigration,
    Session,
    SessionStatus,
)


class QueryKind(StrEnum):
    """Which index a listing reads."""

    AGENT = "agent"
    CUSTOMER = "customer"
    STEP = "step"
    SCENARIO = "scenario"
    UNMARKED = "unmarked"


@dataclass(frozen=True)
class Query:
    """A parsed listing: which sessions of which tenant, plus the page to read."""

    kind: QueryKind
    tenant_id: UUID
    owner_id: UUID
    status: SessionStatus | None = None
    scenario_version: int | None = None
    step_id: str | None = None
    limit: int = 100
    after: str | None = None

    def matches(self, session: Session) -> bool:
        """True if ``session`` belongs in this listing."""
        if session.tenant_id != self.tenant_id:
            return False
        if self.kind is QueryKind.AGENT:
            return session.agent_id == self.owner_id and self._status_ok(session)
        if self.kind is QueryKind.CUSTOMER:
            return session.customer_profile_id == self.owner_id and self._status_ok(session)
        on_version = (
            session.active_scenario_id == self.owner_id
            and session.active_scenario_version == self.scenario_version
        )
        if self.kind is QueryKind.STEP:
            return on_version and session.current_step_id == self.step_id
        if self.kind is QueryKind.UNMARKED:
            return on_version and session.pending_migration is None
        return on_version

    def _status_ok(self, session: Session) -> bool:
        return self.status is None or session.status == self.status


def _status(value: SessionStatus | str | None) -> SessionStatus | None:
    return None if value is None else parse_enum(SessionStatus, value, "status")


def _version(value: int) -> int:
    # Beyond MAX_SCENARIO_VERSION no session can be on the version: refused on every
    # backend alike rather than answered with an empty page by some and an error by others.
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_SCENARIO_VERSION
    ):
        raise InvalidInputError(
            f"scenario_version must be an integer from 0 to {MAX_SCENARIO_VERSION}; "
            f"got {describe(value)}",
            field="scenario_version",
        )
    return value


def by_agent(
    tenant_id: UUID | str,
    agent_id: UUID | str,
    status: SessionStatus | str | None,
    limit: int,
    cursor: str | None,
) -> Query:
    """Parse the arguments of ``list_by_agent``."""
    return _by_owner(QueryKind.AGENT, tenant_id, ("agent_id", agent_id), status, limit, cursor)


def by_customer(
    tenant_id: UUID | str,
    customer_profile_id: UUID | str,
    status: SessionStatus | str | None,
    limit: int,
    cursor: str | None,
) -> Query:
    """Parse the arguments of ``list_by_customer``."""
    owner = ("customer_profile_id", customer_profile_id)
    return _by_owner(QueryKind.CUSTOMER, tenant_id, owner, status, limit, cursor)


def _by_owner(
    kind: QueryKind,
    tenant_id: UUID | str,
    owner: tuple[str, UUID | str],
    status: SessionStatus | str | None,
    limit: int,
    cursor: str | None,
) -> Query:
    return Query(
        kind,
        parse_id(tenant_id, "tenant_id"),
        parse_id(owner[1], owner[0]),
        status=_status(status),
        limit=check_limit(limit),
        after=after_id(cursor),
    )


def by_scenario_step(
    tenant_id: UUID | str,
    scenario_id: UUID | str,
    scenario_version: int,
    step_id: str | None,
    limit: int,
    cursor: str | None,
) -> Query:
    """Parse the arguments of ``find_by_scenario_step`` (a None step means any step)."""
    if step_id is not None:
        if not isinstance(step_id, str):
            raise InvalidInputError(
                f"step_id must be text; got {describe(step_id)}", field="step_id"
            )
        check_text(step_id, "step_id", MAX_IDENTIFIER_LENGTH)
    return Query(
        QueryKind.SCENARIO if step_id is None else QueryKind.STEP,
        parse_id(tenant_id, "tenant_id"),
        parse_id(scenario_id, "scenario_id"),
        scenario_version=_version(scenario_version),
        step_id=step_id,
        limit=check_limit(limit),
        after=after_id(cursor),
    )


def unmarked(
    tenant_id: UUID | str, scenario_id: UUID | str, from_version: int, limit: int
) -> Query:
    """Sessions on a scenario version that carry no pending migration yet."""
    return Query(
        QueryKind.UNMARKED,
        parse_id(tenant_id, "tenant_id"),
        parse_id(scenario_id, "scenario_id"),
        scenario_version=_version(from_version),
        limit=check_limit(limit),
    )


def check_channel(channel: str, user_channel_id: str) -> None:
    """Validate a channel identity given to ``get_by_channel``."""
    for field, value in (("channel", channel), ("user_channel_id", user_channel_id)):
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"{field} must be non-empty text", field=field)
        check_text(value, field, MAX_IDENTIFIER_LENGTH)


def checked_migration(migration: PendingMigration, q: Query, now: datetime) -> PendingMigration:
    """Validate a migration given to ``mark_pending_migration`` against its arguments."""
    if not isinstance(migration, PendingMigration):
        raise InvalidInputError("migration must be a PendingMigration", field="migration")
    if migration.scenario_id != q.owner_id or migration.from_version != q.scenario_version:
        raise InvalidInputError(
            "migration is for another scenario or version than the one given",
            field="migration",
        )
    if migration.marked_at is None:
        return migration.model_copy(update={"marked_at": now})
    return migration

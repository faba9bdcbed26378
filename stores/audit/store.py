"""The audit store interface: an append-only record of turns and events, per tenant."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from stores.audit.models import AuditEvent, TurnRecord
from stores.common import Page
from stores.common.arguments import ParsesArguments


class AuditStore(ParsesArguments, ABC):
    """Append-only storage of :class:`TurnRecord` and :class:`AuditEvent`.

    Nothing is ever updated or deleted through this interface. Every read is scoped to a
    tenant: an id of another tenant behaves exactly like a missing one. Listings return
    keyset-paginated :class:`Page` objects; pass ``next_cursor`` back as ``cursor`` to get
    the next page. Time ranges are half-open, ``since <= created_at < until``, and take
    timezone-aware datetimes. ``created_at`` of every record is set from the store's clock.
    Record ids are unique across all tenants (as UUIDs are meant to be): reusing one is a
    DuplicateError even in another tenant.
    """

    @abstractmethod
    def record_turn(self, turn: TurnRecord) -> TurnRecord:
        """Append a turn record and return the stored copy (``created_at`` set).

        Raises:
            DuplicateError: the session already has a turn with this ``turn_number``,
                or a record with this id exists.
            InvalidInputError: oversized text, JSON fields that PostgreSQL cannot hold
                (NaN, infinities, NUL characters, non-JSON values), a negative turn number.
        """

    @abstractmethod
    def get_turn(self, tenant_id: UUID | str, turn_id: UUID | str) -> TurnRecord | None:
        """Return the turn record ``turn_id`` of ``tenant_id``, or None."""

    @abstractmethod
    def list_turns_by_session(
        self,
        tenant_id: UUID | str,
        session_id: UUID | str,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[TurnRecord]:
        """List a session's turn records in turn order (ascending ``turn_number``)."""

    @abstractmethod
    def list_turns(
        self,
        tenant_id: UUID | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[TurnRecord]:
        """List a tenant's turn records created in ``[since, until)``, newest first.

        Records created at the same instant are ordered by id, descending.
        """

    @abstractmethod
    def record_event(self, event: AuditEvent) -> AuditEvent:
        """Append an audit event and return the stored copy (``created_at`` set).

        Raises:
            NotFoundError: ``turn_id`` names no turn record of this tenant.
            DuplicateError: an event with this id exists.
            InvalidInputError: an empty or oversized ``event_type``, ``event_data`` that
                PostgreSQL cannot hold.
        """

    @abstractmethod
    def get_event(self, tenant_id: UUID | str, event_id: UUID | str) -> AuditEvent | None:
        """Return the audit event ``event_id`` of ``tenant_id``, or None."""

    @abstractmethod
    def list_events(
        self,
        tenant_id: UUID | str,
        *,
        event_type: str | Sequence[str] | None = None,
        session_id: UUID | str | None = None,
        turn_id: UUID | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        """List a tenant's audit events, newest first, filtered by every argument given.

        ``event_type`` is one type or several (any of them matches); ``since``/``until``
        bound ``created_at`` as ``[since, until)``.
        """

"""The audit store interface: an append-only record of turns and events, per tenant."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from stores.audit.models import AuditEvent, TurnRecord
from stores.audit.validation import (
    Listing,
    R,
    created_key,
    event_types,
    newest_first,
    prepare_event,
    prepare_turn,
)
from stores.common import Clock, Page, check_limit, parse_id
from stores.common.arguments import ParsesArguments
from stores.common.keyset import as_int, cursor_key, page_of


class AuditStore(ParsesArguments, ABC):
    """Append-only storage of :class:`TurnRecord` and :class:`AuditEvent`.

    Nothing is ever updated or deleted through this interface. Every read is scoped to a
    tenant: an id of another tenant behaves exactly like a missing one. Listings return
    keyset-paginated :class:`Page` objects; pass ``next_cursor`` back as ``cursor`` to get
    the next page. Time ranges are half-open, ``since <= created_at < until``, and take
    timezone-aware datetimes. ``created_at`` of every record is set from the store's clock.
    Record ids are unique across all tenants (as UUIDs are meant to be): reusing one is a
    DuplicateError even in another tenant.

    Backends implement the protected hooks at the end; the public methods check and parse
    their arguments once, here, so that every backend refuses the same inputs alike.
    """

    _clock: Clock

    def record_turn(self, turn: TurnRecord) -> TurnRecord:
        """Append a turn record and return the stored copy (``created_at`` set).

        Raises:
            DuplicateError: the session already has a turn with this ``turn_number``,
                or a record with this id exists.
            InvalidInputError: oversized text, JSON fields that PostgreSQL cannot hold
                (NaN, infinities, NUL characters, non-JSON values), a negative turn number.
        """
        return self._insert_turn(prepare_turn(turn, self._clock()))

    def get_turn(self, tenant_id: UUID | str, turn_id: UUID | str) -> TurnRecord | None:
        """Return the turn record ``turn_id`` of ``tenant_id``, or None."""
        return self._get(TurnRecord, parse_id(tenant_id, "tenant_id"), parse_id(turn_id, "turn_id"))

    def list_turns_by_session(
        self,
        tenant_id: UUID | str,
        session_id: UUID | str,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[TurnRecord]:
        """List a session's turn records in turn order (ascending ``turn_number``)."""
        tenant, session = parse_id(tenant_id, "tenant_id"), parse_id(session_id, "session_id")
        check_limit(limit)
        after = cursor_key(cursor, (as_int,))
        rows = self._session_turns(tenant, session, None if after is None else after[0], limit)
        return page_of(rows, limit, lambda t: (t.turn_number,))

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
        return self._page(newest_first(TurnRecord, tenant_id, since, until, limit, cursor))

    def record_event(self, event: AuditEvent) -> AuditEvent:
        """Append an audit event and return the stored copy (``created_at`` set).

        Raises:
            NotFoundError: ``turn_id`` names no turn record of this tenant.
            DuplicateError: an event with this id exists.
            InvalidInputError: an empty or oversized ``event_type``, ``event_data`` that
                PostgreSQL cannot hold.
        """
        return self._insert_event(prepare_event(event, self._clock()))

    def get_event(self, tenant_id: UUID | str, event_id: UUID | str) -> AuditEvent | None:
        """Return the audit event ``event_id`` of ``tenant_id``, or None."""
        return self._get(
            AuditEvent, parse_id(tenant_id, "tenant_id"), parse_id(event_id, "event_id")
        )

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
        types = event_types(event_type)
        session = None if session_id is None else parse_id(session_id, "session_id")
        turn = None if turn_id is None else parse_id(turn_id, "turn_id")
        return self._page(
            newest_first(
                AuditEvent,
                tenant_id,
                since,
                until,
                limit,
                cursor,
                event_types=types,
                session_id=session,
                turn_id=turn,
            )
        )

    def _page(self, listing: Listing[R]) -> Page[R]:
        return page_of(self._newest(listing), listing.limit, created_key)

    @abstractmethod
    def _insert_turn(self, turn: TurnRecord) -> TurnRecord:
        """Store a checked, stamped turn record (DuplicateError as :meth:`record_turn`)."""

    @abstractmethod
    def _insert_event(self, event: AuditEvent) -> AuditEvent:
        """Store a checked, stamped event (errors as :meth:`record_event`)."""

    @abstractmethod
    def _get(self, kind: type[R], tenant_id: UUID, item_id: UUID) -> R | None:
        """The tenant's record of ``kind`` with this id, or None."""

    @abstractmethod
    def _session_turns(
        self, tenant_id: UUID, session_id: UUID, after: int | None, limit: int
    ) -> list[TurnRecord]:
        """Up to ``limit + 1`` of the session's turns numbered above ``after``, in order."""

    @abstractmethod
    def _newest(self, listing: Listing[R]) -> list[R]:
        """Up to ``listing.limit + 1`` records the listing matches, newest first (by
        ``(created_at, id)``, descending)."""

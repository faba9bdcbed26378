"""The SessionStore interface: a two-tier store of conversation sessions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from uuid import UUID

from stores.common.arguments import ParsesArguments
from stores.common.pagination import Page
from stores.sessions import query
from stores.sessions.models import PendingMigration, Session, SessionStatus, Tier, TierStats
from stores.sessions.shards import Shard


class SessionStore(ParsesArguments, ABC):
    """Sessions in two tiers: HOT (recently active) and COLD (idle, demoted).

    Semantics every backend follows:

    * ``save`` writes to the hot tier and refreshes the session's last activity.
    * A hot session idle for ``hot_ttl`` or longer is demoted, never deleted, by
      :meth:`demote_idle`; until that sweep runs it stays hot and readable.
    * :meth:`get` of a cold session returns it and promotes it to hot in the same call.
    * A session whose age (from ``created_at``) reaches ``max_age`` is never returned by any
      read, and :meth:`purge_expired` removes it from every tier and every index.
    * Optimistic locking: ``save`` of a session whose ``version`` is not the stored one raises
      ConflictError; a new session (``version == 0``) must not already exist. Every save either
      lands or raises: no update is ever silently lost.
    * Listings are ordered by session id, paginated by keyset cursor, and cover both tiers.
    * An id of another tenant behaves exactly like a missing id. Bad input raises
      InvalidInputError before anything is written.
    """

    revalidate_models = False
    # The codec validates a session strictly: a value assigned after construction that the
    # constructor would have coerced (a version of "1") is refused, not converted.

    @abstractmethod
    def save(self, session: Session, *, overwrite: bool = False) -> Session:
        """Store ``session`` in the hot tier and return the stored copy.

        The stored copy has ``version`` incremented, ``last_activity_at`` set to now and
        ``created_at`` set by the store (now for a new session, else the stored value).

        With ``overwrite=False`` (the default), ``session.version`` must equal the stored
        version: ``0`` creates a session that must not exist yet (ConflictError carrying the
        current version if it does); a positive version updates an existing session
        (ConflictError if another save landed first, NotFoundError if it no longer exists).
        With ``overwrite=True`` the write wins whatever is stored (last write wins).

        Raises InvalidInputError (nothing written) for a session that does not validate, has
        variables that are not plain JSON data, or is larger than the store's ``max_bytes``;
        and for anything some tier could not store or give back unchanged: numbers beyond
        the range of their column (``version`` up to 2**63 - 2, scenario versions and turn
        numbers up to 2**31 - 1), integers of more than 4,300 digits, floats of 1e16 or
        more, values nested more than 64 deep (see :mod:`stores.sessions.codec`).
        """

    @abstractmethod
    def get(self, tenant_id: UUID | str, session_id: UUID | str) -> Session | None:
        """Return the session, or None if it does not exist, expired, or is another tenant's.

        A cold session is promoted to the hot tier by this call. Reading does not count as
        activity: a hot session's idle time keeps running. A stored document that can no
        longer be parsed raises CorruptDataError naming the session.
        """

    @abstractmethod
    def delete(self, tenant_id: UUID | str, session_id: UUID | str) -> bool:
        """Remove the session from both tiers and every index; True if it existed."""

    @abstractmethod
    def get_by_channel(
        self, tenant_id: UUID | str, channel: str, user_channel_id: str
    ) -> Session | None:
        """The newest session (by ``created_at``, then id) of a channel identity, any status.

        Does not promote: callers that go on with the session call :meth:`get` or
        :meth:`save`.
        """

    def list_by_agent(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        status: SessionStatus | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Session]:
        """Sessions of an agent in both tiers, optionally of one status, ordered by id."""
        return self._list(query.by_agent(tenant_id, agent_id, status, limit, cursor))

    def list_by_customer(
        self,
        tenant_id: UUID | str,
        customer_profile_id: UUID | str,
        *,
        status: SessionStatus | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Session]:
        """Sessions of a customer profile in both tiers, optionally of one status, by id."""
        return self._list(query.by_customer(tenant_id, customer_profile_id, status, limit, cursor))

    def find_by_scenario_step(
        self,
        tenant_id: UUID | str,
        scenario_id: UUID | str,
        scenario_version: int,
        step_id: str | None,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Session]:
        """Sessions on a step of a scenario version (any step if ``step_id`` is None), by id."""
        return self._list(
            query.by_scenario_step(tenant_id, scenario_id, scenario_version, step_id, limit, cursor)
        )

    @abstractmethod
    def _list(self, q: query.Query) -> Page[Session]:
        """One page of the listing ``q`` (already parsed and checked)."""

    @abstractmethod
    def tier_of(self, tenant_id: UUID | str, session_id: UUID | str) -> Tier | None:
        """The tier holding the session, or None if it does not exist or expired.

        Only looks: never promotes and never counts as activity.
        """

    @abstractmethod
    def demote_idle(self, *, limit: int = 1000, shard: Shard | None = None) -> int:
        """Move up to ``limit`` hot sessions idle for ``hot_ttl`` or longer to the cold tier.

        Idle time counts from the last save or promotion. Returns how many moved; call again
        until it returns less than ``limit``. Demotion never loses a session, even if it is
        interrupted between its steps or races a save.

        With ``shard``, only sessions of the tenants that shard owns move (see
        :mod:`stores.sessions.shards`): the shards of one split share a sweep, each reading
        only its own part, and together they move what one unsharded sweep would.
        """

    @abstractmethod
    def purge_expired(self, *, limit: int = 1000, shard: Shard | None = None) -> int:
        """Remove up to ``limit`` sessions whose age reached ``max_age`` from every tier and
        index; returns how many were removed. ``shard`` limits it to the tenants that shard
        owns, as for :meth:`demote_idle`."""

    @abstractmethod
    def count_idle(self) -> int:
        """How many hot sessions are idle for ``hot_ttl`` or longer, over all tenants.

        What :meth:`demote_idle` would move now, counted without moving anything.
        """

    def oldest_idle_since(self) -> datetime | None:
        """When the hot session idle for the longest time last saw activity (None: no hot
        session, or a store that cannot tell). Only looks; the metrics' oldest idle age."""
        return None

    @abstractmethod
    def count_expired(self) -> int:
        """How many sessions reached ``max_age``, in every tier and over all tenants.

        What :meth:`purge_expired` would remove now, counted without removing anything.
        """

    def unmovable_counts(self) -> dict[str, int]:
        """How many sessions this store object's sweeps left where they were, by reason, since
        it was built: ``quarantined`` (the cold tier refused them, see
        :meth:`count_quarantined`) and ``changed`` (a fenced step found the session changed
        since it was read, and left it to the next sweep). A store whose sweeps never leave a
        session behind reports none. The workers count these per sweep run, for the metrics."""
        return {}

    def count_quarantined(self) -> int:
        """How many hot sessions the demotion sweep set aside because the cold tier refused
        them (stored before a check that now refuses them, say), over all tenants.

        They stay hot and readable, are not read again by later sweeps, and go back to the
        sweep at their next save. A store whose cold tier stores whatever it accepts has none.
        """
        return 0

    def mark_pending_migration(
        self,
        tenant_id: UUID | str,
        scenario_id: UUID | str,
        from_version: int,
        migration: PendingMigration,
        *,
        limit: int = 1000,
    ) -> int:
        """Set ``pending_migration`` on up to ``limit`` sessions still on ``from_version``.

        Covers both tiers without moving sessions between them and without counting as
        activity; each marked session's version is incremented, so a writer holding an older
        copy gets ConflictError and re-reads. Sessions that already carry a pending migration
        are skipped, so repeated calls are idempotent; ``marked_at`` is set to now when the
        given migration has none. Returns how many sessions were marked.
        """
        q = query.unmarked(tenant_id, scenario_id, from_version, limit)
        return self._mark_pending(q, migration)

    @abstractmethod
    def _mark_pending(self, q: query.Query, migration: PendingMigration) -> int:
        """Mark the sessions the query ``q`` finds (already parsed and checked)."""

    @abstractmethod
    def stats(self) -> TierStats:
        """Counts and (estimated) bytes of each tier, over all tenants."""

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""

"""The PostgreSQL profile store (SQLAlchemy Core on psycopg 3).

Every change that touches more than one row (a field set closing the old value, a merge,
a delete) runs in one transaction. Writes lock the profile row they act on: field sets,
identity links and asset adds take ``FOR SHARE`` (they may run side by side), while merges
and deletes take ``FOR UPDATE``, so no write can land on a profile that a concurrent merge
is folding away; it waits and then follows the merge to the surviving profile.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa

from stores.common.keyset import TimeKey
from stores.driver_errors import translated
from stores.errors import ConflictError, DuplicateError, NotFoundError
from stores.postgres import schema
from stores.postgres.store import PostgresStore
from stores.profiles import sql
from stores.profiles.models import ChannelIdentity, CustomerProfile, ProfileAsset, ProfileField
from stores.profiles.store import Attached, ProfileStore
from stores.profiles.validation import Owned, OwnedListing

P = schema.customer_profiles
I = schema.channel_identities  # noqa: E741
F = schema.profile_fields
A = schema.profile_assets

R = TypeVar("R")
M = TypeVar("M", CustomerProfile, ChannelIdentity, ProfileAsset, ProfileField)

_TABLES: dict[type[Any], sa.Table] = {ChannelIdentity: I, ProfileField: F, ProfileAsset: A}

CURRENT_FIELD_INDEX = "uq_profile_fields_current"

SET_FIELD_ATTEMPTS = 5
"""How often a field set is retried when a concurrent set of the same field won the race."""


class PostgresProfileStore(PostgresStore, ProfileStore):
    """A :class:`ProfileStore` on the ``customer_profiles``, ``channel_identities``,
    ``profile_fields`` and ``profile_assets`` tables.

    Concurrent :meth:`set_field` calls on the same field: the partial unique index
    ``uq_profile_fields_current`` admits one current value; a writer that loses the race
    rolls back and retries on the new current value (up to ``SET_FIELD_ATTEMPTS`` times,
    then ConflictError), so every set lands in the history in some order.
    """

    def _insert_profile(self, profile: CustomerProfile) -> CustomerProfile:
        self._write(lambda conn: conn.execute(P.insert().values(**profile.model_dump())))
        return profile

    def _get_profile(
        self, tenant_id: UUID, profile_id: UUID, follow_merges: bool
    ) -> CustomerProfile | None:
        with self._engine.connect() as conn:
            if follow_merges:
                return sql.survivor(conn, tenant_id, profile_id)
            row = sql.one(
                conn, sa.select(P).where(P.c.tenant_id == tenant_id, P.c.id == profile_id)
            )
            return CustomerProfile.model_validate(row) if row else None

    def _profile_by_external_id(self, tenant_id: UUID, external_id: str) -> CustomerProfile | None:
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(P.c.id).where(P.c.tenant_id == tenant_id, P.c.external_id == external_id)
            ).scalar()
            return sql.survivor(conn, tenant_id, found) if found else None

    def _list_profiles(
        self, tenant_id: UUID, include_merged: bool, after: TimeKey | None, limit: int
    ) -> list[CustomerProfile]:
        query = sa.select(P).where(P.c.tenant_id == tenant_id)
        if not include_merged:
            query = query.where(P.c.merged_into_id.is_(None))
        return self._oldest_first(query, P, P.c.created_at, after, limit, CustomerProfile)

    def _set_external_id(
        self, tenant_id: UUID, profile_id: UUID, external_id: str | None
    ) -> CustomerProfile:
        def change(conn: sa.Connection) -> CustomerProfile:
            survivor = sql.lock_survivor(conn, tenant_id, profile_id, "update")
            row = sql.one(
                conn,
                P.update()
                .where(P.c.tenant_id == tenant_id, P.c.id == survivor.id)
                .values(external_id=external_id, updated_at=self._clock())
                .returning(*P.c),
            )
            return CustomerProfile.model_validate(row)

        return self._write(change)

    def _delete_profile(self, tenant_id: UUID, profile_id: UUID) -> bool:
        def delete(conn: sa.Connection) -> bool:
            try:
                survivor = sql.lock_survivor(conn, tenant_id, profile_id, "update")
            except NotFoundError:
                return False
            # Identities, fields and assets go with their profile (ON DELETE CASCADE);
            # merged profiles point straight at the survivor, so they go first.
            conn.execute(
                P.delete().where(P.c.tenant_id == tenant_id, P.c.merged_into_id == survivor.id)
            )
            conn.execute(P.delete().where(P.c.tenant_id == tenant_id, P.c.id == survivor.id))
            return True

        return self._write(delete)

    def _merge(self, tenant_id: UUID, source_id: UUID, target_id: UUID) -> CustomerProfile:
        return self._write(
            lambda conn: sql.merge(conn, tenant_id, source_id, target_id, self._clock())
        )

    def _attach(self, item: Attached) -> Attached:
        def attach(conn: sa.Connection) -> Attached:
            survivor = sql.lock_survivor(conn, item.tenant_id, item.profile_id, "share")
            final = item.model_copy(update={"profile_id": survivor.id})
            conn.execute(_TABLES[type(item)].insert().values(**final.model_dump()))
            return final

        return self._write(attach)

    def _identity(
        self, tenant_id: UUID, channel: str, channel_user_id: str
    ) -> ChannelIdentity | None:
        rows = self._read(sql.identity_query(tenant_id, channel, channel_user_id))
        return ChannelIdentity.model_validate(dict(rows[0])) if rows else None

    def _get(self, kind: type[Owned], tenant_id: UUID, item_id: UUID) -> Owned | None:
        table = _TABLES[kind]
        rows = self._read(
            sa.select(table).where(table.c.tenant_id == tenant_id, table.c.id == item_id)
        )
        return kind.model_validate(dict(rows[0])) if rows else None

    def _remove(self, kind: type[Owned], tenant_id: UUID, item_id: UUID) -> bool:
        table = _TABLES[kind]
        return self._write(
            lambda conn: (
                conn.execute(
                    table.delete().where(table.c.tenant_id == tenant_id, table.c.id == item_id)
                ).rowcount
                > 0
            )
        )

    def _owned(self, listing: OwnedListing[Owned]) -> list[Owned]:
        table = _TABLES[listing.kind]
        tenant = listing.tenant_id
        query = sa.select(table).where(
            table.c.tenant_id == tenant,
            table.c.profile_id == sql.owner(tenant, listing.profile_id),
        )
        if listing.column is not None:
            query = query.where(table.c[listing.column] == listing.value)
        key = table.c[listing.order_by]
        return self._oldest_first(query, table, key, listing.after, listing.limit, listing.kind)

    def _set_field(self, draft: ProfileField) -> ProfileField:
        tenant, name = draft.tenant_id, draft.field_name

        def change(conn: sa.Connection) -> ProfileField:
            survivor = sql.lock_survivor(conn, tenant, draft.profile_id, "share")
            now = self._clock()
            closed = conn.execute(
                sql.close_current(tenant, survivor.id, name, now).returning(F.c.valid_to)
            ).scalar()
            row = draft.model_copy(
                update={"profile_id": survivor.id, "valid_from": closed or now, "created_at": now}
            )
            conn.execute(F.insert().values(**row.model_dump()))
            return row

        for attempt in range(SET_FIELD_ATTEMPTS):
            try:
                return self._write(change)
            except DuplicateError as exc:
                # Only a lost race for the current value is retried; the rolled-back
                # attempt left nothing behind, so the retry starts from the winner's value.
                if sql.constraint_name(exc.__cause__) != CURRENT_FIELD_INDEX:
                    raise
                if attempt == SET_FIELD_ATTEMPTS - 1:
                    raise ConflictError(
                        f"field {name!r} kept changing concurrently; re-read and retry"
                    ) from exc
        raise AssertionError("unreachable")

    def _clear_field(self, tenant_id: UUID, profile_id: UUID, field_name: str) -> bool:
        def clear(conn: sa.Connection) -> bool:
            survivor = sql.lock_survivor(conn, tenant_id, profile_id, "share")
            done = conn.execute(
                sql.close_current(tenant_id, survivor.id, field_name, self._clock())
            )
            return done.rowcount > 0

        return self._write(clear)

    def _read_fields(
        self, tenant_id: UUID, profile_id: UUID, as_of: datetime | None, only: str | None
    ) -> dict[str, ProfileField]:
        query = sa.select(F).where(
            F.c.tenant_id == tenant_id, F.c.profile_id == sql.owner(tenant_id, profile_id)
        )
        if only is not None:
            query = query.where(F.c.field_name == only)
        if as_of is None:
            query = query.where(F.c.valid_to.is_(None))
        else:
            query = query.where(
                F.c.valid_from <= as_of, sa.or_(F.c.valid_to.is_(None), F.c.valid_to > as_of)
            )
        # Where two values cover one instant (histories joined by a merge), the one that
        # started latest wins; the first row of each field in this order is that one.
        query = query.order_by(
            F.c.field_name, F.c.valid_from.desc(), F.c.created_at.desc(), F.c.id.desc()
        )
        found: dict[str, ProfileField] = {}
        for r in self._read(query):
            if r["field_name"] not in found:
                found[r["field_name"]] = ProfileField.model_validate(dict(r))
        return found

    def _write(self, work: Callable[[sa.Connection], R]) -> R:
        """Run ``work`` in one transaction; any error rolls all of it back."""
        with translated(), self._engine.begin() as conn:
            return work(conn)

    def _oldest_first(
        self,
        query: sa.Select[Any],
        table: sa.Table,
        key: sa.ColumnElement[Any],
        after: TimeKey | None,
        limit: int,
        model: type[M],
    ) -> list[M]:
        if after is not None:
            query = query.where(sa.tuple_(key, table.c.id) > sa.tuple_(*after))
        rows = self._read(query.order_by(key, table.c.id).limit(limit + 1))
        return [model.model_validate(dict(r)) for r in rows]

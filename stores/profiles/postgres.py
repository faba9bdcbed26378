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

from stores.common import Page, check_limit, parse_id
from stores.driver_errors import translated
from stores.errors import ConflictError, DuplicateError, InvalidInputError, NotFoundError
from stores.postgres import schema
from stores.postgres.store import PostgresStore
from stores.profiles import sql
from stores.profiles.models import (
    ChannelIdentity,
    CustomerProfile,
    FieldSource,
    ProfileAsset,
    ProfileField,
)
from stores.profiles.store import ProfileStore
from stores.profiles.validation import (
    as_of_time,
    check_field_args,
    check_name,
    key_cursor,
    parse_key_cursor,
    prepare_asset,
    prepare_identity,
    prepare_profile,
)

P = schema.customer_profiles
I = schema.channel_identities  # noqa: E741
F = schema.profile_fields
A = schema.profile_assets

R = TypeVar("R")
M = TypeVar("M", CustomerProfile, ChannelIdentity, ProfileAsset, ProfileField)

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

    # ---- profiles -------------------------------------------------------------------

    def create_profile(self, profile: CustomerProfile) -> CustomerProfile:
        stored = prepare_profile(profile, self._clock())
        self._write(lambda conn: conn.execute(P.insert().values(**stored.model_dump())))
        return stored

    def get_profile(
        self, tenant_id: UUID | str, profile_id: UUID | str, *, follow_merges: bool = True
    ) -> CustomerProfile | None:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        with translated(), self._engine.connect() as conn:
            if not follow_merges:
                row = sql.one(conn, sa.select(P).where(P.c.tenant_id == tenant, P.c.id == pid))
                return CustomerProfile.model_validate(row) if row else None
            return sql.survivor(conn, tenant, pid)

    def get_profile_by_external_id(
        self, tenant_id: UUID | str, external_id: str
    ) -> CustomerProfile | None:
        tenant = parse_id(tenant_id, "tenant_id")
        check_name(external_id, "external_id")
        with translated(), self._engine.connect() as conn:
            found = conn.execute(
                sa.select(P.c.id).where(P.c.tenant_id == tenant, P.c.external_id == external_id)
            ).scalar()
            return sql.survivor(conn, tenant, found) if found else None

    def list_profiles(
        self,
        tenant_id: UUID | str,
        *,
        include_merged: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[CustomerProfile]:
        tenant = parse_id(tenant_id, "tenant_id")
        check_limit(limit)
        after = parse_key_cursor(cursor)
        query = sa.select(P).where(P.c.tenant_id == tenant)
        if not include_merged:
            query = query.where(P.c.merged_into_id.is_(None))
        return self._page(query, P, P.c.created_at, after, limit, CustomerProfile)

    def set_external_id(
        self, tenant_id: UUID | str, profile_id: UUID | str, external_id: str | None
    ) -> CustomerProfile:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        if external_id is not None:
            check_name(external_id, "external_id")

        def change(conn: sa.Connection) -> CustomerProfile:
            survivor = sql.lock_survivor(conn, tenant, pid, "update")
            row = sql.one(
                conn,
                P.update()
                .where(P.c.tenant_id == tenant, P.c.id == survivor.id)
                .values(external_id=external_id, updated_at=self._clock())
                .returning(*P.c),
            )
            return CustomerProfile.model_validate(row)

        return self._write(change)

    def delete_profile(self, tenant_id: UUID | str, profile_id: UUID | str) -> bool:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")

        def delete(conn: sa.Connection) -> bool:
            try:
                survivor = sql.lock_survivor(conn, tenant, pid, "update")
            except NotFoundError:
                return False
            # Identities, fields and assets go with their profile (ON DELETE CASCADE);
            # merged profiles point straight at the survivor, so they go first.
            conn.execute(
                P.delete().where(P.c.tenant_id == tenant, P.c.merged_into_id == survivor.id)
            )
            conn.execute(P.delete().where(P.c.tenant_id == tenant, P.c.id == survivor.id))
            return True

        return self._write(delete)

    def merge_profiles(
        self, tenant_id: UUID | str, source_id: UUID | str, target_id: UUID | str
    ) -> CustomerProfile:
        tenant = parse_id(tenant_id, "tenant_id")
        src_id = parse_id(source_id, "source_id")
        dst_id = parse_id(target_id, "target_id")
        if src_id == dst_id:
            raise InvalidInputError("cannot merge a profile into itself", field="source_id")
        return self._write(lambda conn: sql.merge(conn, tenant, src_id, dst_id, self._clock()))

    # ---- channel identities -----------------------------------------------------------

    def link_identity(self, identity: ChannelIdentity) -> ChannelIdentity:
        stored = prepare_identity(identity, self._clock())

        def link(conn: sa.Connection) -> ChannelIdentity:
            survivor = sql.lock_survivor(conn, stored.tenant_id, stored.profile_id, "share")
            final = stored.model_copy(update={"profile_id": survivor.id})
            conn.execute(I.insert().values(**final.model_dump()))
            return final

        return self._write(link)

    def get_identity(
        self, tenant_id: UUID | str, channel: str, channel_user_id: str
    ) -> ChannelIdentity | None:
        tenant = parse_id(tenant_id, "tenant_id")
        check_name(channel, "channel")
        check_name(channel_user_id, "channel_user_id")
        with translated(), self._engine.connect() as conn:
            row = sql.one(conn, sql.identity_query(tenant, channel, channel_user_id))
        return ChannelIdentity.model_validate(row) if row else None

    def resolve_identity(
        self, tenant_id: UUID | str, channel: str, channel_user_id: str
    ) -> CustomerProfile | None:
        tenant = parse_id(tenant_id, "tenant_id")
        check_name(channel, "channel")
        check_name(channel_user_id, "channel_user_id")
        with translated(), self._engine.connect() as conn:
            owner = conn.execute(
                sql.identity_query(tenant, channel, channel_user_id).with_only_columns(
                    I.c.profile_id
                )
            ).scalar()
            return sql.survivor(conn, tenant, owner) if owner else None

    def list_identities(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ChannelIdentity]:
        return self._list_owned(I, tenant_id, profile_id, limit, cursor, ChannelIdentity)

    def unlink_identity(self, tenant_id: UUID | str, identity_id: UUID | str) -> bool:
        tenant = parse_id(tenant_id, "tenant_id")
        iid = parse_id(identity_id, "identity_id")
        return self._write(
            lambda conn: (
                conn.execute(I.delete().where(I.c.tenant_id == tenant, I.c.id == iid)).rowcount > 0
            )
        )

    # ---- fields ---------------------------------------------------------------------

    def set_field(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        field_name: str,
        value: Any,
        *,
        source: FieldSource | str = FieldSource.USER_PROVIDED,
        confidence: float = 1.0,
        verified: bool = False,
    ) -> ProfileField:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        name, parsed_source, conf = check_field_args(
            field_name, value, source, confidence, verified
        )

        def change(conn: sa.Connection) -> ProfileField:
            survivor = sql.lock_survivor(conn, tenant, pid, "share")
            now = self._clock()
            closed = conn.execute(
                sql.close_current(tenant, survivor.id, name, now).returning(F.c.valid_to)
            ).scalar()
            row = ProfileField(
                tenant_id=tenant,
                profile_id=survivor.id,
                field_name=name,
                field_value=value,
                source=parsed_source,
                confidence=conf,
                verified=verified,
                valid_from=closed or now,
                valid_to=None,
                created_at=now,
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

    def clear_field(self, tenant_id: UUID | str, profile_id: UUID | str, field_name: str) -> bool:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        name = check_name(field_name, "field_name")

        def clear(conn: sa.Connection) -> bool:
            survivor = sql.lock_survivor(conn, tenant, pid, "share")
            done = conn.execute(sql.close_current(tenant, survivor.id, name, self._clock()))
            return done.rowcount > 0

        return self._write(clear)

    def get_field(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        field_name: str,
        *,
        as_of: datetime | None = None,
    ) -> ProfileField | None:
        name = check_name(field_name, "field_name")
        return self._read_fields(tenant_id, profile_id, as_of, name).get(name)

    def get_fields(
        self, tenant_id: UUID | str, profile_id: UUID | str, *, as_of: datetime | None = None
    ) -> dict[str, ProfileField]:
        return self._read_fields(tenant_id, profile_id, as_of, None)

    def _read_fields(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        as_of: datetime | None,
        only: str | None,
    ) -> dict[str, ProfileField]:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        when = as_of_time(as_of)
        query = sa.select(F).where(
            F.c.tenant_id == tenant, F.c.profile_id == sql.owner(tenant, pid)
        )
        if only is not None:
            query = query.where(F.c.field_name == only)
        if when is None:
            query = query.where(F.c.valid_to.is_(None))
        else:
            query = query.where(
                F.c.valid_from <= when, sa.or_(F.c.valid_to.is_(None), F.c.valid_to > when)
            )
        # Where two values cover one instant (histories joined by a merge), the one that
        # started latest wins; the first row of each field in this order is that one.
        query = query.order_by(
            F.c.field_name, F.c.valid_from.desc(), F.c.created_at.desc(), F.c.id.desc()
        )
        with translated(), self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        found: dict[str, ProfileField] = {}
        for r in rows:
            if r["field_name"] not in found:
                found[r["field_name"]] = ProfileField.model_validate(dict(r))
        return found

    def field_history(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        *,
        field_name: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ProfileField]:
        name = check_name(field_name, "field_name") if field_name is not None else None
        return self._list_owned(
            F,
            tenant_id,
            profile_id,
            limit,
            cursor,
            ProfileField,
            extra=(F.c.field_name == name) if name is not None else None,
            key=F.c.valid_from,
        )

    # ---- assets -----------------------------------------------------------------------

    def add_asset(self, asset: ProfileAsset) -> ProfileAsset:
        stored = prepare_asset(asset, self._clock())

        def add(conn: sa.Connection) -> ProfileAsset:
            survivor = sql.lock_survivor(conn, stored.tenant_id, stored.profile_id, "share")
            final = stored.model_copy(update={"profile_id": survivor.id})
            conn.execute(A.insert().values(**final.model_dump()))
            return final

        return self._write(add)

    def get_asset(self, tenant_id: UUID | str, asset_id: UUID | str) -> ProfileAsset | None:
        tenant = parse_id(tenant_id, "tenant_id")
        aid = parse_id(asset_id, "asset_id")
        with translated(), self._engine.connect() as conn:
            row = sql.one(conn, sa.select(A).where(A.c.tenant_id == tenant, A.c.id == aid))
        return ProfileAsset.model_validate(row) if row else None

    def list_assets(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        *,
        asset_type: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ProfileAsset]:
        kind = check_name(asset_type, "asset_type") if asset_type is not None else None
        return self._list_owned(
            A,
            tenant_id,
            profile_id,
            limit,
            cursor,
            ProfileAsset,
            extra=(A.c.asset_type == kind) if kind is not None else None,
        )

    def remove_asset(self, tenant_id: UUID | str, asset_id: UUID | str) -> bool:
        tenant = parse_id(tenant_id, "tenant_id")
        aid = parse_id(asset_id, "asset_id")
        return self._write(
            lambda conn: (
                conn.execute(A.delete().where(A.c.tenant_id == tenant, A.c.id == aid)).rowcount > 0
            )
        )

    # ---- helpers ----------------------------------------------------------------------

    def _write(self, work: Callable[[sa.Connection], R]) -> R:
        """Run ``work`` in one transaction; any error rolls all of it back."""
        with translated(), self._engine.begin() as conn:
            return work(conn)

    def _list_owned(
        self,
        table: sa.Table,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        limit: int,
        cursor: str | None,
        model: type[M],
        *,
        extra: sa.ColumnElement[bool] | None = None,
        key: sa.Column[Any] | None = None,
    ) -> Page[M]:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        check_limit(limit)
        after = parse_key_cursor(cursor)
        query = sa.select(table).where(
            table.c.tenant_id == tenant, table.c.profile_id == sql.owner(tenant, pid)
        )
        if extra is not None:
            query = query.where(extra)
        return self._page(
            query, table, key if key is not None else table.c.created_at, after, limit, model
        )

    def _page(
        self,
        query: sa.Select[Any],
        table: sa.Table,
        key: sa.Column[Any],
        after: tuple[datetime, UUID] | None,
        limit: int,
        model: type[M],
    ) -> Page[M]:
        if after is not None:
            query = query.where(sa.tuple_(key, table.c.id) > sa.tuple_(*after))
        query = query.order_by(key, table.c.id).limit(limit + 1)
        with translated(), self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        items = [model.model_validate(dict(r)) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = key_cursor(_key_of(items[-1], key.name), items[-1].id) if more else None
        return Page(items=items, next_cursor=next_cursor)


def _key_of(
    item: CustomerProfile | ChannelIdentity | ProfileAsset | ProfileField, name: str
) -> datetime:
    value = getattr(item, name)
    assert isinstance(value, datetime)
    return value

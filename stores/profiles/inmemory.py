"""The in-memory profile store: the reference behaviour every other backend must match."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from stores.common import Clock, Page, check_limit, parse_id, utc_now
from stores.errors import DuplicateError, InvalidInputError, NotFoundError
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

T = TypeVar("T", CustomerProfile, ChannelIdentity, ProfileAsset, ProfileField)
Owned = TypeVar("Owned", ChannelIdentity, ProfileAsset, ProfileField)

Key = tuple[UUID, UUID]


class InMemoryProfileStore(ProfileStore):
    """A thread-safe, process-local :class:`ProfileStore`; for tests, demos and development."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._profiles: dict[Key, CustomerProfile] = {}
        self._identities: dict[Key, ChannelIdentity] = {}
        self._fields: dict[Key, ProfileField] = {}
        self._assets: dict[Key, ProfileAsset] = {}

    # ---- profiles -------------------------------------------------------------------

    def create_profile(self, profile: CustomerProfile) -> CustomerProfile:
        stored = prepare_profile(profile, self._clock())
        with self._lock:
            if _taken(self._profiles, stored.id):
                raise DuplicateError(f"profile {stored.id} already exists")
            self._check_external_id(stored.tenant_id, stored.external_id, stored.id)
            self._profiles[(stored.tenant_id, stored.id)] = stored
        return stored.model_copy(deep=True)

    def get_profile(
        self, tenant_id: UUID | str, profile_id: UUID | str, *, follow_merges: bool = True
    ) -> CustomerProfile | None:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        with self._lock:
            found = (
                self._survivor(tenant, pid) if follow_merges else self._profiles.get((tenant, pid))
            )
            return found.model_copy(deep=True) if found else None

    def get_profile_by_external_id(
        self, tenant_id: UUID | str, external_id: str
    ) -> CustomerProfile | None:
        tenant = parse_id(tenant_id, "tenant_id")
        check_name(external_id, "external_id")
        with self._lock:
            for p in self._profiles.values():
                if p.tenant_id == tenant and p.external_id == external_id:
                    found = self._survivor(tenant, p.id)
                    return found.model_copy(deep=True) if found else None
        return None

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
        with self._lock:
            rows = [
                p
                for p in self._profiles.values()
                if p.tenant_id == tenant and (include_merged or p.merged_into_id is None)
            ]
            return _oldest_first(rows, lambda p: p.created_at, after, limit)

    def set_external_id(
        self, tenant_id: UUID | str, profile_id: UUID | str, external_id: str | None
    ) -> CustomerProfile:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        if external_id is not None:
            check_name(external_id, "external_id")
        with self._lock:
            survivor = self._require(tenant, pid)
            self._check_external_id(tenant, external_id, survivor.id)
            updated = survivor.model_copy(
                update={"external_id": external_id, "updated_at": self._clock()}
            )
            self._profiles[(tenant, survivor.id)] = updated
            return updated.model_copy(deep=True)

    def delete_profile(self, tenant_id: UUID | str, profile_id: UUID | str) -> bool:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        with self._lock:
            survivor = self._survivor(tenant, pid)
            if survivor is None:
                return False
            doomed = {survivor.id} | {
                p.id
                for p in self._profiles.values()
                if p.tenant_id == tenant and p.merged_into_id == survivor.id
            }
            _drop_owned(self._identities, tenant, doomed)
            _drop_owned(self._fields, tenant, doomed)
            _drop_owned(self._assets, tenant, doomed)
            for gone in doomed:
                del self._profiles[(tenant, gone)]
            return True

    def merge_profiles(
        self, tenant_id: UUID | str, source_id: UUID | str, target_id: UUID | str
    ) -> CustomerProfile:
        tenant = parse_id(tenant_id, "tenant_id")
        src_id = parse_id(source_id, "source_id")
        dst_id = parse_id(target_id, "target_id")
        if src_id == dst_id:
            raise InvalidInputError("cannot merge a profile into itself", field="source_id")
        with self._lock:
            source = self._require(tenant, src_id, "source_id")
            target = self._require(tenant, dst_id, "target_id")
            if source.id == target.id:
                return target.model_copy(deep=True)
            now = self._clock()
            source_current = {f.field_name: f for f in self._current_fields(tenant, source.id)}
            for kept in self._current_fields(tenant, target.id):
                other = source_current.get(kept.field_name)
                if other is None:
                    continue
                loser = kept if other.valid_from > kept.valid_from else other
                self._fields[(tenant, loser.id)] = loser.model_copy(
                    update={"valid_to": max(now, loser.valid_from)}
                )
            _move_owned(self._identities, tenant, source.id, target.id)
            _move_owned(self._fields, tenant, source.id, target.id)
            _move_owned(self._assets, tenant, source.id, target.id)
            for key, row in list(self._profiles.items()):
                if key[0] == tenant and row.merged_into_id == source.id:
                    self._profiles[key] = row.model_copy(
                        update={"merged_into_id": target.id, "updated_at": now}
                    )
            self._profiles[(tenant, source.id)] = source.model_copy(
                update={"merged_into_id": target.id, "updated_at": now}
            )
            merged = target.model_copy(update={"updated_at": now})
            self._profiles[(tenant, target.id)] = merged
            return merged.model_copy(deep=True)

    # ---- channel identities -----------------------------------------------------------

    def link_identity(self, identity: ChannelIdentity) -> ChannelIdentity:
        stored = prepare_identity(identity, self._clock())
        tenant = stored.tenant_id
        with self._lock:
            survivor = self._require(tenant, stored.profile_id)
            if _taken(self._identities, stored.id):
                raise DuplicateError(f"channel identity {stored.id} already exists")
            if self._find_identity(tenant, stored.channel, stored.channel_user_id):
                raise DuplicateError(
                    f"{stored.channel} user {stored.channel_user_id!r} is already linked"
                )
            stored = stored.model_copy(update={"profile_id": survivor.id})
            self._identities[(tenant, stored.id)] = stored
        return stored.model_copy(deep=True)

    def get_identity(
        self, tenant_id: UUID | str, channel: str, channel_user_id: str
    ) -> ChannelIdentity | None:
        tenant = parse_id(tenant_id, "tenant_id")
        check_name(channel, "channel")
        check_name(channel_user_id, "channel_user_id")
        with self._lock:
            found = self._find_identity(tenant, channel, channel_user_id)
            return found.model_copy(deep=True) if found else None

    def resolve_identity(
        self, tenant_id: UUID | str, channel: str, channel_user_id: str
    ) -> CustomerProfile | None:
        tenant = parse_id(tenant_id, "tenant_id")
        check_name(channel, "channel")
        check_name(channel_user_id, "channel_user_id")
        with self._lock:
            found = self._find_identity(tenant, channel, channel_user_id)
            profile = self._survivor(tenant, found.profile_id) if found else None
            return profile.model_copy(deep=True) if profile else None

    def list_identities(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ChannelIdentity]:
        return self._list_owned(
            self._identities, tenant_id, profile_id, limit, cursor, lambda _: True
        )

    def unlink_identity(self, tenant_id: UUID | str, identity_id: UUID | str) -> bool:
        tenant = parse_id(tenant_id, "tenant_id")
        iid = parse_id(identity_id, "identity_id")
        with self._lock:
            return self._identities.pop((tenant, iid), None) is not None

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
        with self._lock:
            survivor = self._require(tenant, pid)
            now = self._clock()
            start = now
            current = self._current_field(tenant, survivor.id, name)
            if current is not None:
                start = max(now, current.valid_from)
                self._fields[(tenant, current.id)] = current.model_copy(update={"valid_to": start})
            row = ProfileField(
                tenant_id=tenant,
                profile_id=survivor.id,
                field_name=name,
                field_value=value,
                source=parsed_source,
                confidence=conf,
                verified=verified,
                valid_from=start,
                valid_to=None,
                created_at=now,
            )
            self._fields[(tenant, row.id)] = row.model_copy(deep=True)
            return row

    def clear_field(self, tenant_id: UUID | str, profile_id: UUID | str, field_name: str) -> bool:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        name = check_name(field_name, "field_name")
        with self._lock:
            survivor = self._require(tenant, pid)
            current = self._current_field(tenant, survivor.id, name)
            if current is None:
                return False
            end = max(self._clock(), current.valid_from)
            self._fields[(tenant, current.id)] = current.model_copy(update={"valid_to": end})
            return True

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
        with self._lock:
            survivor = self._survivor(tenant, pid)
            if survivor is None:
                return {}
            rows = [
                f
                for f in self._fields.values()
                if f.tenant_id == tenant
                and f.profile_id == survivor.id
                and (only is None or f.field_name == only)
                and (
                    f.valid_to is None
                    if when is None
                    else f.valid_from <= when and (f.valid_to is None or when < f.valid_to)
                )
            ]
            best: dict[str, ProfileField] = {}
            for f in sorted(rows, key=lambda f: (f.valid_from, f.created_at, f.id)):
                best[f.field_name] = f
            return {k: v.model_copy(deep=True) for k, v in sorted(best.items())}

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
            self._fields,
            tenant_id,
            profile_id,
            limit,
            cursor,
            lambda f: name is None or f.field_name == name,
            key=lambda f: f.valid_from,
        )

    # ---- assets -----------------------------------------------------------------------

    def add_asset(self, asset: ProfileAsset) -> ProfileAsset:
        stored = prepare_asset(asset, self._clock())
        tenant = stored.tenant_id
        with self._lock:
            survivor = self._require(tenant, stored.profile_id)
            if _taken(self._assets, stored.id):
                raise DuplicateError(f"profile asset {stored.id} already exists")
            stored = stored.model_copy(update={"profile_id": survivor.id})
            self._assets[(tenant, stored.id)] = stored
        return stored.model_copy(deep=True)

    def get_asset(self, tenant_id: UUID | str, asset_id: UUID | str) -> ProfileAsset | None:
        tenant = parse_id(tenant_id, "tenant_id")
        aid = parse_id(asset_id, "asset_id")
        with self._lock:
            found = self._assets.get((tenant, aid))
            return found.model_copy(deep=True) if found else None

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
            self._assets,
            tenant_id,
            profile_id,
            limit,
            cursor,
            lambda a: kind is None or a.asset_type == kind,
        )

    def remove_asset(self, tenant_id: UUID | str, asset_id: UUID | str) -> bool:
        tenant = parse_id(tenant_id, "tenant_id")
        aid = parse_id(asset_id, "asset_id")
        with self._lock:
            return self._assets.pop((tenant, aid), None) is not None

    # ---- helpers ----------------------------------------------------------------------

    def _survivor(self, tenant: UUID, profile_id: UUID) -> CustomerProfile | None:
        found = self._profiles.get((tenant, profile_id))
        hops = 0
        while found is not None and found.merged_into_id is not None and hops < 64:
            found = self._profiles.get((tenant, found.merged_into_id))
            hops += 1
        return found

    def _require(
        self, tenant: UUID, profile_id: UUID, field: str = "profile_id"
    ) -> CustomerProfile:
        found = self._survivor(tenant, profile_id)
        if found is None:
            raise NotFoundError(f"profile {profile_id} does not exist ({field})")
        return found

    def _check_external_id(self, tenant: UUID, external_id: str | None, owner: UUID) -> None:
        if external_id is None:
            return
        for p in self._profiles.values():
            if p.tenant_id == tenant and p.external_id == external_id and p.id != owner:
                raise DuplicateError(f"external_id {external_id!r} is already in use")

    def _find_identity(
        self, tenant: UUID, channel: str, channel_user_id: str
    ) -> ChannelIdentity | None:
        for i in self._identities.values():
            if (
                i.tenant_id == tenant
                and i.channel == channel
                and i.channel_user_id == channel_user_id
            ):
                return i
        return None

    def _current_fields(self, tenant: UUID, profile_id: UUID) -> list[ProfileField]:
        return [
            f
            for f in self._fields.values()
            if f.tenant_id == tenant and f.profile_id == profile_id and f.valid_to is None
        ]

    def _current_field(self, tenant: UUID, profile_id: UUID, name: str) -> ProfileField | None:
        for f in self._current_fields(tenant, profile_id):
            if f.field_name == name:
                return f
        return None

    def _list_owned(
        self,
        table: dict[Key, Owned],
        tenant_id: UUID | str,
        profile_id: UUID | str,
        limit: int,
        cursor: str | None,
        keep: Callable[[Owned], bool],
        key: Callable[[Owned], datetime] = lambda row: row.created_at,
    ) -> Page[Owned]:
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        check_limit(limit)
        after = parse_key_cursor(cursor)
        with self._lock:
            survivor = self._survivor(tenant, pid)
            if survivor is None:
                return Page(items=[])
            rows = [
                r
                for r in table.values()
                if r.tenant_id == tenant and r.profile_id == survivor.id and keep(r)
            ]
            return _oldest_first(rows, key, after, limit)


def _oldest_first(
    rows: Iterable[T],
    key: Callable[[T], datetime],
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> Page[T]:
    """Order by (key, id) ascending, skip up to the cursor, and cut one page."""
    picked = sorted(
        (r for r in rows if after is None or (key(r), r.id) > after),
        key=lambda r: (key(r), r.id),
    )[: limit + 1]
    items = [r.model_copy(deep=True) for r in picked[:limit]]
    next_cursor = key_cursor(key(items[-1]), items[-1].id) if len(picked) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def _drop_owned(table: dict[Key, Owned], tenant: UUID, owners: set[UUID]) -> None:
    for key in [k for k, v in table.items() if k[0] == tenant and v.profile_id in owners]:
        del table[key]


def _move_owned(table: dict[Key, Owned], tenant: UUID, source: UUID, target: UUID) -> None:
    for key, row in list(table.items()):
        if key[0] == tenant and row.profile_id == source:
            table[key] = row.model_copy(update={"profile_id": target})


def _taken(table: dict[Key, Any], item_id: UUID) -> bool:
    """Ids are unique across tenants, as the tables' primary keys make them."""
    return any(key[1] == item_id for key in table)

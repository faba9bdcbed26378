"""The in-memory profile store: the reference behaviour every other backend must match."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any
from uuid import UUID

from stores.common import Clock, utc_now
from stores.common.keyset import TimeKey
from stores.errors import DuplicateError, NotFoundError
from stores.profiles.models import (
    ChannelIdentity,
    CustomerProfile,
    ProfileAsset,
    ProfileField,
)
from stores.profiles.store import Attached, ProfileStore
from stores.profiles.validation import Owned, OwnedListing, created_key

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

    def _insert_profile(self, profile: CustomerProfile) -> CustomerProfile:
        with self._lock:
            if _taken(self._profiles, profile.id):
                raise DuplicateError(f"profile {profile.id} already exists")
            self._check_external_id(profile.tenant_id, profile.external_id, profile.id)
            self._profiles[(profile.tenant_id, profile.id)] = profile
        return profile.model_copy(deep=True)

    def _get_profile(
        self, tenant_id: UUID, profile_id: UUID, follow_merges: bool
    ) -> CustomerProfile | None:
        with self._lock:
            found = (
                self._survivor(tenant_id, profile_id)
                if follow_merges
                else self._profiles.get((tenant_id, profile_id))
            )
            return found.model_copy(deep=True) if found else None

    def _profile_by_external_id(self, tenant_id: UUID, external_id: str) -> CustomerProfile | None:
        with self._lock:
            for p in self._profiles.values():
                if p.tenant_id == tenant_id and p.external_id == external_id:
                    return self._get_profile(tenant_id, p.id, True)
        return None

    def _list_profiles(
        self, tenant_id: UUID, include_merged: bool, after: TimeKey | None, limit: int
    ) -> list[CustomerProfile]:
        with self._lock:
            rows = [
                p
                for p in self._profiles.values()
                if p.tenant_id == tenant_id
                and (include_merged or p.merged_into_id is None)
                and (after is None or created_key(p) > after)
            ]
            rows.sort(key=created_key)
            return [p.model_copy(deep=True) for p in rows[: limit + 1]]

    def _set_external_id(
        self, tenant_id: UUID, profile_id: UUID, external_id: str | None
    ) -> CustomerProfile:
        with self._lock:
            survivor = self._require(tenant_id, profile_id)
            self._check_external_id(tenant_id, external_id, survivor.id)
            updated = survivor.model_copy(
                update={"external_id": external_id, "updated_at": self._clock()}
            )
            self._profiles[(tenant_id, survivor.id)] = updated
            return updated.model_copy(deep=True)

    def _delete_profile(self, tenant_id: UUID, profile_id: UUID) -> bool:
        with self._lock:
            survivor = self._survivor(tenant_id, profile_id)
            if survivor is None:
                return False
            doomed = {survivor.id} | {
                p.id
                for p in self._profiles.values()
                if p.tenant_id == tenant_id and p.merged_into_id == survivor.id
            }
            for table in self._owned_tables():
                for key in [
                    k for k, v in table.items() if k[0] == tenant_id and v.profile_id in doomed
                ]:
                    del table[key]
            for gone in doomed:
                del self._profiles[(tenant_id, gone)]
            return True

    def _merge(self, tenant_id: UUID, source_id: UUID, target_id: UUID) -> CustomerProfile:
        with self._lock:
            source = self._require(tenant_id, source_id, "source_id")
            target = self._require(tenant_id, target_id, "target_id")
            if source.id == target.id:
                return target.model_copy(deep=True)
            now = self._clock()
            source_current = {f.field_name: f for f in self._current_fields(tenant_id, source.id)}
            for kept in self._current_fields(tenant_id, target.id):
                other = source_current.get(kept.field_name)
                if other is None:
                    continue
                loser = kept if other.valid_from > kept.valid_from else other
                self._fields[(tenant_id, loser.id)] = loser.model_copy(
                    update={"valid_to": max(now, loser.valid_from)}
                )
            for table in self._owned_tables():
                for key, row in list(table.items()):
                    if key[0] == tenant_id and row.profile_id == source.id:
                        table[key] = row.model_copy(update={"profile_id": target.id})
            for key, row in list(self._profiles.items()):
                if key[0] == tenant_id and (row.merged_into_id == source.id or row.id == source.id):
                    self._profiles[key] = row.model_copy(
                        update={"merged_into_id": target.id, "updated_at": now}
                    )
            merged = target.model_copy(update={"updated_at": now})
            self._profiles[(tenant_id, target.id)] = merged
            return merged.model_copy(deep=True)

    def _attach(self, item: Attached) -> Attached:
        tenant = item.tenant_id
        table: dict[Key, Any] = self._table(type(item))
        with self._lock:
            survivor = self._require(tenant, item.profile_id)
            if _taken(table, item.id):
                kind = "channel identity" if isinstance(item, ChannelIdentity) else "profile asset"
                raise DuplicateError(f"{kind} {item.id} already exists")
            if isinstance(item, ChannelIdentity) and self._identity(
                tenant, item.channel, item.channel_user_id
            ):
                raise DuplicateError(
                    f"{item.channel} user {item.channel_user_id!r} is already linked"
                )
            stored = item.model_copy(update={"profile_id": survivor.id})
            table[(tenant, stored.id)] = stored
        return stored.model_copy(deep=True)

    def _identity(
        self, tenant_id: UUID, channel: str, channel_user_id: str
    ) -> ChannelIdentity | None:
        with self._lock:
            for i in self._identities.values():
                if (i.tenant_id, i.channel, i.channel_user_id) == (
                    tenant_id,
                    channel,
                    channel_user_id,
                ):
                    return i.model_copy(deep=True)
        return None

    def _get(self, kind: type[Owned], tenant_id: UUID, item_id: UUID) -> Owned | None:
        with self._lock:
            found = self._table(kind).get((tenant_id, item_id))
            return found.model_copy(deep=True) if found else None

    def _remove(self, kind: type[Owned], tenant_id: UUID, item_id: UUID) -> bool:
        with self._lock:
            return self._table(kind).pop((tenant_id, item_id), None) is not None

    def _owned(self, listing: OwnedListing[Owned]) -> list[Owned]:
        with self._lock:
            survivor = self._survivor(listing.tenant_id, listing.profile_id)
            if survivor is None:
                return []
            rows = [
                r
                for r in self._table(listing.kind).values()
                if r.tenant_id == listing.tenant_id
                and r.profile_id == survivor.id
                and listing.matches(r)
            ]
            rows.sort(key=listing.key)
            return [r.model_copy(deep=True) for r in rows[: listing.limit + 1]]

    def _set_field(self, draft: ProfileField) -> ProfileField:
        tenant = draft.tenant_id
        with self._lock:
            survivor = self._require(tenant, draft.profile_id)
            now = self._clock()
            start = now
            current = self._current_field(tenant, survivor.id, draft.field_name)
            if current is not None:
                start = max(now, current.valid_from)
                self._fields[(tenant, current.id)] = current.model_copy(update={"valid_to": start})
            row = draft.model_copy(
                update={"profile_id": survivor.id, "valid_from": start, "created_at": now}
            )
            self._fields[(tenant, row.id)] = row.model_copy(deep=True)
            return row

    def _clear_field(self, tenant_id: UUID, profile_id: UUID, field_name: str) -> bool:
        with self._lock:
            survivor = self._require(tenant_id, profile_id)
            current = self._current_field(tenant_id, survivor.id, field_name)
            if current is None:
                return False
            end = max(self._clock(), current.valid_from)
            self._fields[(tenant_id, current.id)] = current.model_copy(update={"valid_to": end})
            return True

    def _read_fields(
        self, tenant_id: UUID, profile_id: UUID, as_of: datetime | None, only: str | None
    ) -> dict[str, ProfileField]:
        with self._lock:
            survivor = self._survivor(tenant_id, profile_id)
            if survivor is None:
                return {}
            rows = [
                f
                for f in self._fields.values()
                if f.tenant_id == tenant_id
                and f.profile_id == survivor.id
                and (only is None or f.field_name == only)
                and (
                    f.valid_to is None
                    if as_of is None
                    else f.valid_from <= as_of and (f.valid_to is None or as_of < f.valid_to)
                )
            ]
            best: dict[str, ProfileField] = {}
            for f in sorted(rows, key=lambda f: (f.valid_from, f.created_at, f.id)):
                best[f.field_name] = f
            return {k: v.model_copy(deep=True) for k, v in sorted(best.items())}

    def _table(self, kind: type[Owned]) -> dict[Key, Owned]:
        tables: dict[type[Any], dict[Key, Any]] = {
            ChannelIdentity: self._identities,
            ProfileField: self._fields,
            ProfileAsset: self._assets,
        }
        return tables[kind]

    def _owned_tables(self) -> list[dict[Key, Any]]:
        return [self._identities, self._fields, self._assets]

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


def _taken(table: dict[Key, Any], item_id: UUID) -> bool:
    """Ids are unique across tenants, as the tables' primary keys make them."""
    return any(key[1] == item_id for key in table)

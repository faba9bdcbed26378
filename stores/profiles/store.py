"""The customer profile store interface: profiles, channel identities, fields and assets."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from stores.common import Clock, Page, parse_id
from stores.common.arguments import ParsesArguments
from stores.common.keyset import TimeKey, page_of
from stores.errors import InvalidInputError
from stores.profiles.models import (
    ChannelIdentity,
    CustomerProfile,
    FieldSource,
    ProfileAsset,
    ProfileField,
)
from stores.profiles.validation import (
    Owned,
    OwnedListing,
    after_key,
    as_of_time,
    check_field_args,
    check_name,
    created_key,
    prepare_asset,
    prepare_identity,
    prepare_profile,
)

Attached = TypeVar("Attached", ChannelIdentity, ProfileAsset)


class ProfileStore(ParsesArguments, ABC):
    """Customer profiles of each tenant, with their identities, field history and assets.

    **Tenancy.** Every method is scoped to a tenant: an id of another tenant behaves
    exactly like a missing one. Ids of profiles, identities and assets are unique across
    all tenants (as UUIDs are meant to be): reusing one is a DuplicateError.

    **Merges.** :meth:`merge_profiles` folds one profile into another. Afterwards the merged
    profile keeps its row (with ``merged_into_id`` set) so that old references still work:
    every read given its id answers for the surviving profile, and every write given its
    id is applied to the surviving profile.

    **Field history.** Profile fields are versioned in valid time: each value has
    ``valid_from`` and ``valid_to`` (None while current). :meth:`set_field` closes the
    current value at the time of the change and adds the new one; nothing is overwritten.
    A field's value *as of* a time ``t`` is the value with ``valid_from <= t < valid_to``;
    where more than one value covers ``t`` (two histories joined by a merge), the one that
    started latest wins, as it does for a merge's current values.

    **Listings** return keyset-paginated :class:`Page` objects, oldest first; pass
    ``next_cursor`` back as ``cursor`` for the next page. Reads of a missing profile return
    None, an empty dict or an empty page; writes to one raise NotFoundError.

    Backends implement the protected hooks at the end; the public methods check and parse
    their arguments once, here, so that every backend refuses the same inputs alike.
    """

    _clock: Clock

    def create_profile(self, profile: CustomerProfile) -> CustomerProfile:
        """Store a new profile and return the stored copy (timestamps set by the store).

        Raises:
            DuplicateError: another profile of the tenant has this ``external_id``, or a
                profile with this id exists.
            InvalidInputError: an empty or oversized ``external_id``, or ``merged_into_id``
                set on a new profile.
        """
        return self._insert_profile(prepare_profile(profile, self._clock()))

    def get_profile(
        self, tenant_id: UUID | str, profile_id: UUID | str, *, follow_merges: bool = True
    ) -> CustomerProfile | None:
        """Return a profile, or None.

        With ``follow_merges`` (the default) a merged profile's id returns the surviving
        profile; with ``follow_merges=False`` it returns the merged profile's own row.
        """
        return self._get_profile(
            parse_id(tenant_id, "tenant_id"), parse_id(profile_id, "profile_id"), follow_merges
        )

    def get_profile_by_external_id(
        self, tenant_id: UUID | str, external_id: str
    ) -> CustomerProfile | None:
        """Return the (surviving) profile whose ``external_id`` this is, or None."""
        tenant = parse_id(tenant_id, "tenant_id")
        return self._profile_by_external_id(tenant, check_name(external_id, "external_id"))

    def list_profiles(
        self,
        tenant_id: UUID | str,
        *,
        include_merged: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[CustomerProfile]:
        """List a tenant's profiles, oldest first; merged ones only with ``include_merged``."""
        tenant = parse_id(tenant_id, "tenant_id")
        rows = self._list_profiles(tenant, include_merged, after_key(limit, cursor), limit)
        return page_of(rows, limit, created_key)

    def set_external_id(
        self, tenant_id: UUID | str, profile_id: UUID | str, external_id: str | None
    ) -> CustomerProfile:
        """Set or clear the (surviving) profile's ``external_id``; return the profile.

        Raises:
            NotFoundError: no such profile.
            DuplicateError: another profile of the tenant has this ``external_id``.
        """
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        if external_id is not None:
            check_name(external_id, "external_id")
        return self._set_external_id(tenant, pid, external_id)

    def delete_profile(self, tenant_id: UUID | str, profile_id: UUID | str) -> bool:
        """Delete a customer for good; return False if there was no such profile.

        Removes the surviving profile of ``profile_id``, every profile merged into it,
        and all their identities, field history and assets, in one transaction.
        """
        return self._delete_profile(
            parse_id(tenant_id, "tenant_id"), parse_id(profile_id, "profile_id")
        )

    def merge_profiles(
        self, tenant_id: UUID | str, source_id: UUID | str, target_id: UUID | str
    ) -> CustomerProfile:
        """Fold profile ``source_id`` into ``target_id``; return the surviving target.

        All or nothing: the source's channel identities, its whole field history and its
        assets move to the target; profiles merged into the source earlier now point at
        the target; the source gets ``merged_into_id = target``. Where both have a current
        value for a field, the **newest wins**: the value with the later ``valid_from``
        stays current (the target's on a tie) and the other is closed at the time of the
        merge; both remain in the history.

        Both ids are first resolved to their surviving profiles; if those are the same
        profile, nothing changes and it is returned (a repeated merge is harmless).

        Raises:
            NotFoundError: either profile does not exist.
            InvalidInputError: ``source_id`` and ``target_id`` are the same id.
        """
        tenant = parse_id(tenant_id, "tenant_id")
        source, target = parse_id(source_id, "source_id"), parse_id(target_id, "target_id")
        if source == target:
            raise InvalidInputError("cannot merge a profile into itself", field="source_id")
        return self._merge(tenant, source, target)

    def link_identity(self, identity: ChannelIdentity) -> ChannelIdentity:
        """Attach a channel identity to a profile (its surviving profile, if merged).

        Raises:
            NotFoundError: the profile does not exist.
            DuplicateError: this ``(channel, channel_user_id)`` is already linked to a
                profile of the tenant, or an identity with this id exists.
        """
        return self._attach(prepare_identity(identity, self._clock()))

    def get_identity(
        self, tenant_id: UUID | str, channel: str, channel_user_id: str
    ) -> ChannelIdentity | None:
        """Return the identity ``channel_user_id`` on ``channel``, or None."""
        return self._identity(
            parse_id(tenant_id, "tenant_id"),
            check_name(channel, "channel"),
            check_name(channel_user_id, "channel_user_id"),
        )

    def resolve_identity(
        self, tenant_id: UUID | str, channel: str, channel_user_id: str
    ) -> CustomerProfile | None:
        """Return the (surviving) profile that ``channel_user_id`` on ``channel`` belongs to."""
        found = self.get_identity(tenant_id, channel, channel_user_id)
        return None if found is None else self._get_profile(found.tenant_id, found.profile_id, True)

    def list_identities(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ChannelIdentity]:
        """List the (surviving) profile's channel identities, oldest first."""
        return self._page(ChannelIdentity, tenant_id, profile_id, limit, cursor)

    def unlink_identity(self, tenant_id: UUID | str, identity_id: UUID | str) -> bool:
        """Remove a channel identity; return False if there was none."""
        return self._remove(
            ChannelIdentity, parse_id(tenant_id, "tenant_id"), parse_id(identity_id, "identity_id")
        )

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
        """Give a field a new current value and return it; the old value joins the history.

        The old value's ``valid_to`` and the new value's ``valid_from`` are the store's
        clock time (never earlier than the old value's ``valid_from``). Concurrent sets of
        the same field are applied one after the other: each lands in the history and
        exactly one is current afterwards. ``value`` is any JSON value.

        Raises:
            NotFoundError: the profile does not exist.
            ConflictError: concurrent writers kept this set from landing after retries.
            InvalidInputError: an empty or oversized field name, a value that is not
                JSON, an unknown source, a confidence outside [0, 1].
        """
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        name, parsed_source, conf = check_field_args(
            field_name, value, source, confidence, verified
        )
        draft = ProfileField(
            tenant_id=tenant,
            profile_id=pid,
            field_name=name,
            field_value=value,
            source=parsed_source,
            confidence=conf,
            verified=verified,
        )
        return self._set_field(draft)

    def clear_field(self, tenant_id: UUID | str, profile_id: UUID | str, field_name: str) -> bool:
        """Close a field's current value without a new one; return False if it had none."""
        tenant = parse_id(tenant_id, "tenant_id")
        pid = parse_id(profile_id, "profile_id")
        return self._clear_field(tenant, pid, check_name(field_name, "field_name"))

    def get_field(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        field_name: str,
        *,
        as_of: datetime | None = None,
    ) -> ProfileField | None:
        """Return a field's current value, or its value as of ``as_of``; None if it had none."""
        name = check_name(field_name, "field_name")
        return self._field_values(tenant_id, profile_id, as_of, name).get(name)

    def get_fields(
        self, tenant_id: UUID | str, profile_id: UUID | str, *, as_of: datetime | None = None
    ) -> dict[str, ProfileField]:
        """Return every field's current value (or value as of ``as_of``), by field name."""
        return self._field_values(tenant_id, profile_id, as_of, None)

    def field_history(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        *,
        field_name: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ProfileField]:
        """List every value a profile's fields ever had (or one field's), by ``valid_from``."""
        name = None if field_name is None else check_name(field_name, "field_name")
        return self._page(
            ProfileField,
            tenant_id,
            profile_id,
            limit,
            cursor,
            order_by="valid_from",
            column=None if name is None else "field_name",
            value=name,
        )

    def add_asset(self, asset: ProfileAsset) -> ProfileAsset:
        """Attach an asset to a profile (its surviving profile, if merged) and return it.

        Raises:
            NotFoundError: the profile does not exist.
            DuplicateError: an asset with this id exists.
        """
        return self._attach(prepare_asset(asset, self._clock()))

    def get_asset(self, tenant_id: UUID | str, asset_id: UUID | str) -> ProfileAsset | None:
        """Return an asset, or None."""
        return self._get(
            ProfileAsset, parse_id(tenant_id, "tenant_id"), parse_id(asset_id, "asset_id")
        )

    def list_assets(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        *,
        asset_type: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ProfileAsset]:
        """List the (surviving) profile's assets, oldest first, optionally of one type."""
        kind = None if asset_type is None else check_name(asset_type, "asset_type")
        return self._page(
            ProfileAsset,
            tenant_id,
            profile_id,
            limit,
            cursor,
            column=None if kind is None else "asset_type",
            value=kind,
        )

    def remove_asset(self, tenant_id: UUID | str, asset_id: UUID | str) -> bool:
        """Remove an asset; return False if there was none."""
        return self._remove(
            ProfileAsset, parse_id(tenant_id, "tenant_id"), parse_id(asset_id, "asset_id")
        )

    def _field_values(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        as_of: datetime | None,
        only: str | None,
    ) -> dict[str, ProfileField]:
        tenant, pid = parse_id(tenant_id, "tenant_id"), parse_id(profile_id, "profile_id")
        return self._read_fields(tenant, pid, as_of_time(as_of), only)

    def _page(
        self,
        kind: type[Owned],
        tenant_id: UUID | str,
        profile_id: UUID | str,
        limit: int,
        cursor: str | None,
        *,
        order_by: str = "created_at",
        column: str | None = None,
        value: str | None = None,
    ) -> Page[Owned]:
        tenant, pid = parse_id(tenant_id, "tenant_id"), parse_id(profile_id, "profile_id")
        after = after_key(limit, cursor)
        listing = OwnedListing(kind, tenant, pid, after, limit, order_by, column, value)
        return page_of(self._owned(listing), limit, listing.key)

    @abstractmethod
    def _insert_profile(self, profile: CustomerProfile) -> CustomerProfile:
        """Store a checked, stamped new profile (DuplicateError as :meth:`create_profile`)."""

    @abstractmethod
    def _get_profile(
        self, tenant_id: UUID, profile_id: UUID, follow_merges: bool
    ) -> CustomerProfile | None:
        """As :meth:`get_profile`, on parsed ids."""

    @abstractmethod
    def _profile_by_external_id(self, tenant_id: UUID, external_id: str) -> CustomerProfile | None:
        """As :meth:`get_profile_by_external_id`, on parsed arguments."""

    @abstractmethod
    def _list_profiles(
        self, tenant_id: UUID, include_merged: bool, after: TimeKey | None, limit: int
    ) -> list[CustomerProfile]:
        """Up to ``limit + 1`` profiles after the ``(created_at, id)`` key, oldest first."""

    @abstractmethod
    def _set_external_id(
        self, tenant_id: UUID, profile_id: UUID, external_id: str | None
    ) -> CustomerProfile:
        """As :meth:`set_external_id`, on parsed arguments."""

    @abstractmethod
    def _delete_profile(self, tenant_id: UUID, profile_id: UUID) -> bool:
        """As :meth:`delete_profile`, on parsed ids."""

    @abstractmethod
    def _merge(self, tenant_id: UUID, source_id: UUID, target_id: UUID) -> CustomerProfile:
        """As :meth:`merge_profiles`, on two parsed, different ids."""

    @abstractmethod
    def _attach(self, item: Attached) -> Attached:
        """Store a checked, stamped identity or asset on the surviving profile of its
        ``profile_id`` and return it (errors as :meth:`link_identity`, :meth:`add_asset`)."""

    @abstractmethod
    def _identity(
        self, tenant_id: UUID, channel: str, channel_user_id: str
    ) -> ChannelIdentity | None:
        """As :meth:`get_identity`, on parsed arguments."""

    @abstractmethod
    def _get(self, kind: type[Owned], tenant_id: UUID, item_id: UUID) -> Owned | None:
        """The tenant's row of ``kind`` with this id, or None."""

    @abstractmethod
    def _remove(self, kind: type[Owned], tenant_id: UUID, item_id: UUID) -> bool:
        """Delete the tenant's row of ``kind`` with this id; False if there was none."""

    @abstractmethod
    def _owned(self, listing: OwnedListing[Owned]) -> list[Owned]:
        """Up to ``listing.limit + 1`` rows of the listing, in its order: those of the
        surviving profile of ``listing.profile_id`` that :meth:`OwnedListing.matches`."""

    @abstractmethod
    def _set_field(self, draft: ProfileField) -> ProfileField:
        """Make ``draft`` the current value of its field on the surviving profile of its
        ``profile_id``, closing the old one; the backend sets ``profile_id``,
        ``valid_from`` and ``created_at`` (see :meth:`set_field`)."""

    @abstractmethod
    def _clear_field(self, tenant_id: UUID, profile_id: UUID, field_name: str) -> bool:
        """As :meth:`clear_field`, on parsed arguments."""

    @abstractmethod
    def _read_fields(
        self, tenant_id: UUID, profile_id: UUID, as_of: datetime | None, only: str | None
    ) -> dict[str, ProfileField]:
        """The surviving profile's values current (or valid at ``as_of``), by field name,
        of every field or ``only`` one."""

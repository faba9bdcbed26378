"""The customer profile store interface: profiles, channel identities, fields and assets."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any
from uuid import UUID

from stores.common import Page
from stores.common.arguments import ParsesArguments
from stores.profiles.models import (
    ChannelIdentity,
    CustomerProfile,
    FieldSource,
    ProfileAsset,
    ProfileField,
)


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
    """

    # ---- profiles -------------------------------------------------------------------

    @abstractmethod
    def create_profile(self, profile: CustomerProfile) -> CustomerProfile:
        """Store a new profile and return the stored copy (timestamps set by the store).

        Raises:
            DuplicateError: another profile of the tenant has this ``external_id``, or a
                profile with this id exists.
            InvalidInputError: an empty or oversized ``external_id``, or ``merged_into_id``
                set on a new profile.
        """

    @abstractmethod
    def get_profile(
        self, tenant_id: UUID | str, profile_id: UUID | str, *, follow_merges: bool = True
    ) -> CustomerProfile | None:
        """Return a profile, or None.

        With ``follow_merges`` (the default) a merged profile's id returns the surviving
        profile; with ``follow_merges=False`` it returns the merged profile's own row.
        """

    @abstractmethod
    def get_profile_by_external_id(
        self, tenant_id: UUID | str, external_id: str
    ) -> CustomerProfile | None:
        """Return the (surviving) profile whose ``external_id`` this is, or None."""

    @abstractmethod
    def list_profiles(
        self,
        tenant_id: UUID | str,
        *,
        include_merged: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[CustomerProfile]:
        """List a tenant's profiles, oldest first; merged ones only with ``include_merged``."""

    @abstractmethod
    def set_external_id(
        self, tenant_id: UUID | str, profile_id: UUID | str, external_id: str | None
    ) -> CustomerProfile:
        """Set or clear the (surviving) profile's ``external_id``; return the profile.

        Raises:
            NotFoundError: no such profile.
            DuplicateError: another profile of the tenant has this ``external_id``.
        """

    @abstractmethod
    def delete_profile(self, tenant_id: UUID | str, profile_id: UUID | str) -> bool:
        """Delete a customer for good; return False if there was no such profile.

        Removes the surviving profile of ``profile_id``, every profile merged into it,
        and all their identities, field history and assets, in one transaction.
        """

    @abstractmethod
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

    # ---- channel identities -----------------------------------------------------------

    @abstractmethod
    def link_identity(self, identity: ChannelIdentity) -> ChannelIdentity:
        """Attach a channel identity to a profile (its surviving profile, if merged).

        Raises:
            NotFoundError: the profile does not exist.
            DuplicateError: this ``(channel, channel_user_id)`` is already linked to a
                profile of the tenant, or an identity with this id exists.
        """

    @abstractmethod
    def get_identity(
        self, tenant_id: UUID | str, channel: str, channel_user_id: str
    ) -> ChannelIdentity | None:
        """Return the identity ``channel_user_id`` on ``channel``, or None."""

    @abstractmethod
    def resolve_identity(
        self, tenant_id: UUID | str, channel: str, channel_user_id: str
    ) -> CustomerProfile | None:
        """Return the (surviving) profile that ``channel_user_id`` on ``channel`` belongs to."""

    @abstractmethod
    def list_identities(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ChannelIdentity]:
        """List the (surviving) profile's channel identities, oldest first."""

    @abstractmethod
    def unlink_identity(self, tenant_id: UUID | str, identity_id: UUID | str) -> bool:
        """Remove a channel identity; return False if there was none."""

    # ---- fields ---------------------------------------------------------------------

    @abstractmethod
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

    @abstractmethod
    def clear_field(self, tenant_id: UUID | str, profile_id: UUID | str, field_name: str) -> bool:
        """Close a field's current value without a new one; return False if it had none."""

    @abstractmethod
    def get_field(
        self,
        tenant_id: UUID | str,
        profile_id: UUID | str,
        field_name: str,
        *,
        as_of: datetime | None = None,
    ) -> ProfileField | None:
        """Return a field's current value, or its value as of ``as_of``; None if it had none."""

    @abstractmethod
    def get_fields(
        self, tenant_id: UUID | str, profile_id: UUID | str, *, as_of: datetime | None = None
    ) -> dict[str, ProfileField]:
        """Return every field's current value (or value as of ``as_of``), by field name."""

    @abstractmethod
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

    # ---- assets -----------------------------------------------------------------------

    @abstractmethod
    def add_asset(self, asset: ProfileAsset) -> ProfileAsset:
        """Attach an asset to a profile (its surviving profile, if merged) and return it.

        Raises:
            NotFoundError: the profile does not exist.
            DuplicateError: an asset with this id exists.
        """

    @abstractmethod
    def get_asset(self, tenant_id: UUID | str, asset_id: UUID | str) -> ProfileAsset | None:
        """Return an asset, or None."""

    @abstractmethod
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

    @abstractmethod
    def remove_asset(self, tenant_id: UUID | str, asset_id: UUID | str) -> bool:
        """Remove an asset; return False if there was none."""

"""Input checks and parsed listings shared by every profile backend, so they refuse alike.

Models arrive here already validated by the interface's argument parsing
(:mod:`stores.common.arguments`): these are the checks a model's own fields cannot make.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from stores.common import check_limit, check_text, checks, parse_enum
from stores.common.keyset import TIME_KEY, TimeKey, cursor_key
from stores.common.payload import check_aware, check_json
from stores.errors import InvalidInputError, describe
from stores.profiles.models import (
    MAX_NAME_LENGTH,
    MAX_REFERENCE_LENGTH,
    ChannelIdentity,
    CustomerProfile,
    FieldSource,
    ProfileAsset,
    ProfileField,
)

Owned = TypeVar("Owned", ChannelIdentity, ProfileAsset, ProfileField)


def check_name(value: Any, field: str) -> str:
    """A short non-empty text (channel, field name, external id, asset type): the common
    name check with the profiles' limit."""
    return checks.check_name(value, field, MAX_NAME_LENGTH)


def prepare_profile(profile: CustomerProfile, now: datetime) -> CustomerProfile:
    """Check a new profile and return the copy to store, stamped with ``now``."""
    if profile.external_id is not None:
        check_name(profile.external_id, "external_id")
    if profile.merged_into_id is not None:
        raise InvalidInputError(
            "a new profile cannot be merged already; use merge_profiles", field="merged_into_id"
        )
    return profile.model_copy(update={"created_at": now, "updated_at": now})


def prepare_identity(identity: ChannelIdentity, now: datetime) -> ChannelIdentity:
    """Check a channel identity and return the copy to store, stamped with ``now``."""
    check_name(identity.channel, "channel")
    check_name(identity.channel_user_id, "channel_user_id")
    return identity.model_copy(update={"created_at": now})


def prepare_asset(asset: ProfileAsset, now: datetime) -> ProfileAsset:
    """Check a profile asset and return the copy to store, stamped with ``now``."""
    check_name(asset.asset_type, "asset_type")
    check_text(asset.asset_reference, "asset_reference", MAX_REFERENCE_LENGTH)
    check_json(asset.metadata, "metadata")
    return asset.model_copy(update={"created_at": now})


def check_field_args(
    field_name: Any, value: Any, source: FieldSource | str, confidence: Any, verified: Any
) -> tuple[str, FieldSource, float]:
    """Check the arguments of ``set_field``; return the name, source and confidence."""
    name = check_name(field_name, "field_name")
    check_json(value, "field_value")
    parsed_source = parse_enum(FieldSource, source, "source")
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float))
        or not math.isfinite(confidence)
        or not 0.0 <= confidence <= 1.0
    ):
        raise InvalidInputError(
            f"confidence must be a number from 0 to 1; got {describe(confidence)}",
            field="confidence",
        )
    if not isinstance(verified, bool):
        raise InvalidInputError("verified must be a boolean", field="verified")
    return name, parsed_source, float(confidence)


def as_of_time(as_of: datetime | None) -> datetime | None:
    """Check the ``as_of`` argument of field reads."""
    return check_aware(as_of, "as_of")


@dataclass(frozen=True)
class OwnedListing(Generic[Owned]):
    """A parsed oldest-first listing of the rows of one kind that a profile owns: ordered
    by ``(order_by, id)`` and after the cursor's key, those whose ``column`` (if named)
    equals ``value``, at most ``limit`` of them."""

    kind: type[Owned]
    tenant_id: UUID
    profile_id: UUID
    after: TimeKey | None
    limit: int
    order_by: str = "created_at"
    column: str | None = None
    value: str | None = None

    def key(self, row: Owned) -> TimeKey:
        """The sort key of ``row``, from which cursors are made."""
        return getattr(row, self.order_by), row.id

    def matches(self, row: Owned) -> bool:
        """True if ``row``, already known to be the profile's, belongs in this listing."""
        return (self.column is None or getattr(row, self.column) == self.value) and (
            self.after is None or self.key(row) > self.after
        )


def after_key(limit: int, cursor: str | None) -> TimeKey | None:
    """Check a page size, then decode the cursor of an oldest-first ``(time, id)`` listing."""
    check_limit(limit)
    return cursor_key(cursor, TIME_KEY)


def created_key(profile: CustomerProfile) -> TimeKey:
    """The sort key of a profile listing, from which its cursors are made."""
    return profile.created_at, profile.id

"""Input checks and cursor helpers shared by every profile backend, so they refuse alike."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from uuid import UUID

from stores.common import check_text, checks, decode_cursor, encode_cursor, parse_enum
from stores.common.payload import check_aware, check_json, revalidate
from stores.errors import InvalidInputError, describe
from stores.profiles.models import (
    MAX_NAME_LENGTH,
    MAX_REFERENCE_LENGTH,
    ChannelIdentity,
    CustomerProfile,
    FieldSource,
    ProfileAsset,
)


def check_name(value: Any, field: str) -> str:
    """A short non-empty text (channel, field name, external id, asset type): the common
    name check with the profiles' limit."""
    return checks.check_name(value, field, MAX_NAME_LENGTH)


def prepare_profile(profile: CustomerProfile, now: datetime) -> CustomerProfile:
    """Check a new profile and return the copy to store, stamped with ``now``."""
    if not isinstance(profile, CustomerProfile):
        raise InvalidInputError("profile must be a CustomerProfile", field="profile")
    profile = revalidate(profile)
    if profile.external_id is not None:
        check_name(profile.external_id, "external_id")
    if profile.merged_into_id is not None:
        raise InvalidInputError(
            "a new profile cannot be merged already; use merge_profiles", field="merged_into_id"
        )
    return profile.model_copy(update={"created_at": now, "updated_at": now})


def prepare_identity(identity: ChannelIdentity, now: datetime) -> ChannelIdentity:
    """Check a channel identity and return the copy to store, stamped with ``now``."""
    if not isinstance(identity, ChannelIdentity):
        raise InvalidInputError("identity must be a ChannelIdentity", field="identity")
    identity = revalidate(identity)
    check_name(identity.channel, "channel")
    check_name(identity.channel_user_id, "channel_user_id")
    return identity.model_copy(update={"created_at": now})


def prepare_asset(asset: ProfileAsset, now: datetime) -> ProfileAsset:
    """Check a profile asset and return the copy to store, stamped with ``now``."""
    if not isinstance(asset, ProfileAsset):
        raise InvalidInputError("asset must be a ProfileAsset", field="asset")
    asset = revalidate(asset)
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


def key_cursor(when: datetime, item_id: UUID) -> str:
    """The cursor after an item in an oldest-first ``(time, id)`` listing."""
    return encode_cursor(when, item_id)


def parse_key_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    """Decode a cursor made by :func:`key_cursor`."""
    if cursor is None:
        return None
    raw = decode_cursor(cursor, 2)
    try:
        when = datetime.fromisoformat(raw[0])
        after = UUID(raw[1])
    except (TypeError, ValueError, AttributeError):
        raise InvalidInputError("cursor is not valid", field="cursor") from None
    aware = check_aware(when, "cursor")
    assert aware is not None
    return aware, after

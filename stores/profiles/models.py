"""Customer profiles: who a customer is across channels, what is known about them, and when."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from stores.common.clock import utc_now
from stores.common.payload import UtcDatetime

MAX_NAME_LENGTH = 500
"""The longest external id, channel, channel user id, field name or asset type."""

MAX_REFERENCE_LENGTH = 4000
"""The longest asset reference (a URL or storage key)."""


class FieldSource(StrEnum):
    """Where a profile field's value came from."""

    USER_PROVIDED = "USER_PROVIDED"
    EXTRACTED = "EXTRACTED"
    INFERRED = "INFERRED"
    SYSTEM = "SYSTEM"


class _Row(BaseModel):
    """A row of a profile table: its id (unique across tenants) and its tenant."""

    model_config = ConfigDict(extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID


class _Owned(_Row):
    """A row that belongs to one profile (and moves to the survivor when it is merged)."""

    profile_id: UUID


class CustomerProfile(_Row):
    """One customer of a tenant.

    ``external_id`` (the tenant's own customer key) is unique per tenant when set.
    ``merged_into_id`` is set once this profile has been merged into another; reads of a
    merged profile return the surviving one. ``created_at``/``updated_at`` are set by the
    store from its clock.
    """

    external_id: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    merged_into_id: UUID | None = None
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)


class ChannelIdentity(_Owned):
    """A customer's identity on one channel (``channel_user_id`` on ``channel``).

    Unique per tenant by ``(channel, channel_user_id)``: it resolves to exactly one profile.
    """

    channel: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    channel_user_id: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    verified: bool = False
    created_at: UtcDatetime = Field(default_factory=utc_now)


class ProfileField(_Owned):
    """One value of one field of a profile, with the time span it was valid for.

    ``valid_to`` is None for the current value. Setting a field closes the current value
    (its ``valid_to`` becomes the time of the change) and adds the new one, so the full
    history stays readable. ``field_value`` is any JSON value.
    """

    field_name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    field_value: Any = None
    source: FieldSource = FieldSource.USER_PROVIDED
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    verified: bool = False
    valid_from: UtcDatetime = Field(default_factory=utc_now)
    valid_to: UtcDatetime | None = None
    created_at: UtcDatetime = Field(default_factory=utc_now)


class ProfileAsset(_Owned):
    """A file or object that belongs to a profile (a document, an image), by reference."""

    asset_type: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    asset_reference: str = Field(min_length=1, max_length=MAX_REFERENCE_LENGTH)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDatetime = Field(default_factory=utc_now)

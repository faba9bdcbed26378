"""Agent memory: episodes (what happened or was learnt) and a graph of entities.

Validity is a half-open interval: an item is valid at ``t`` when ``valid_from <= t`` and
``valid_to`` is None or later than ``t``. A ``valid_from`` left as None is set by the store
to the time it records the item.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from stores.common.clock import utc_now


class EpisodeType(StrEnum):
    """What an episode records."""

    TURN = "TURN"
    SUMMARY = "SUMMARY"
    FACT = "FACT"
    EVENT = "EVENT"


class RelationshipDirection(StrEnum):
    """Which relationships of an entity to follow."""

    OUTGOING = "OUTGOING"
    """Relationships whose source is the entity."""
    INCOMING = "INCOMING"
    """Relationships whose target is the entity."""
    BOTH = "BOTH"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_interval(valid_from: datetime | None, valid_to: datetime | None) -> None:
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise ValueError("valid_to must be later than valid_from")


def valid_at(valid_from: datetime | None, valid_to: datetime | None, when: datetime) -> bool:
    """Whether an item with this validity interval is valid at ``when``."""
    return (valid_from is None or valid_from <= when) and (valid_to is None or valid_to > when)


class Episode(_Model):
    """One memory of an agent: a turn, a summary, a fact or an event, optionally embedded."""

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    agent_id: UUID
    customer_profile_id: UUID | None = None
    session_id: UUID | None = None
    group_id: str | None = None
    content: str
    embedding: list[float] | None = None
    embedding_model: str | None = None
    episode_type: EpisodeType = EpisodeType.TURN
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None
    recorded_at: AwareDatetime = Field(default_factory=utc_now)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _interval(self) -> Episode:
        _check_interval(self.valid_from, self.valid_to)
        return self


class Entity(_Model):
    """A person, thing or concept the agent knows about."""

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    agent_id: UUID
    customer_profile_id: UUID | None = None
    name: str = Field(min_length=1)
    entity_type: str = Field(min_length=1)
    canonical_name: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)


class Relationship(_Model):
    """A typed, directed edge between two entities of one tenant.

    Unique by (source, target, type, valid_from): the same fact recorded again for a later
    period is a new relationship.
    """

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    source_entity_id: UUID
    target_entity_id: UUID
    relationship_type: str = Field(min_length=1)
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _interval(self) -> Relationship:
        _check_interval(self.valid_from, self.valid_to)
        return self


class Neighbor(_Model):
    """An entity reached by a traversal, how far away, and the relationship that reached it."""

    entity: Entity
    relationship: Relationship
    depth: int

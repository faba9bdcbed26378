"""Input checks for memory items, and what an update keeps and refuses: shared by every
backend so that they agree."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from stores.common.checks import NAME_MAX_LENGTH, check_fraction, check_name, with_plain_json
from stores.common.validation import check_text, parse_enum, parse_id, validate_embedding
from stores.common.vectors import float32_list
from stores.errors import InvalidInputError
from stores.memory.models import Entity, Episode, EpisodeType, Relationship

__all__ = [
    "check_interval",
    "check_name",
    "checked_entity",
    "checked_episode",
    "checked_relationship",
    "checked_when",
    "episode_types",
    "invalidated",
    "new_episode",
    "optional_id",
    "revised_entity",
    "revised_episode",
    "revised_relationship",
    "same_vector",
]


def checked_when(value: datetime | None, field: str) -> datetime | None:
    """Reject naive datetimes (a time filter must say which time zone it means)."""
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise InvalidInputError(f"{field} must be a timezone-aware datetime", field=field)
    return value


def check_interval(valid_from: datetime | None, valid_to: datetime | None) -> None:
    """Reject a validity interval that ends before (or when) it starts."""
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise InvalidInputError("valid_to must be after valid_from", field="valid_to")


def optional_id(value: UUID | str | None, field: str) -> UUID | None:
    """Parse an optional id filter."""
    return None if value is None else parse_id(value, field)


def checked_episode(episode: Episode, dimensions: int) -> Episode:
    """Validate an episode (text sizes, embedding, JSON metadata, importance); the copy
    returned holds its embedding at the float32 precision every backend stores."""
    check_text(episode.content, "content")
    check_text(episode.group_id, "group_id", NAME_MAX_LENGTH)
    check_text(episode.embedding_model, "embedding_model", NAME_MAX_LENGTH)
    check_fraction(episode.importance, "importance")
    embedding = float32_list(validate_embedding(episode.embedding, dimensions))
    return with_plain_json(episode.model_copy(update={"embedding": embedding}), "metadata")


def checked_entity(entity: Entity) -> Entity:
    """Validate an entity."""
    check_name(entity.name)
    check_name(entity.entity_type, "entity_type")
    check_text(entity.canonical_name, "canonical_name", NAME_MAX_LENGTH)
    return with_plain_json(entity, "attributes")


def checked_relationship(relationship: Relationship) -> Relationship:
    """Validate a relationship."""
    check_name(relationship.relationship_type, "relationship_type")
    check_fraction(relationship.confidence, "confidence")
    return with_plain_json(relationship, "metadata")


def episode_types(values: Sequence[EpisodeType | str] | None) -> list[EpisodeType] | None:
    """Parse an episode-type filter (None means any type)."""
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInputError("episode_types must be a list of types", field="episode_types")
    return sorted({parse_enum(EpisodeType, v, "episode_types") for v in values})


def same_vector(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
    """Whether two embeddings are equal at the float32 precision they are stored with."""
    if a is None or b is None:
        return a is b
    return array("f", a) == array("f", b)


def new_episode(episode: Episode, dimensions: int, now: datetime) -> Episode:
    """A checked episode as recorded ``now``: valid from then, unless it says otherwise."""
    item = checked_episode(episode, dimensions)
    item = item.model_copy(update={"recorded_at": now, "valid_from": item.valid_from or now})
    check_interval(item.valid_from, item.valid_to)
    return item


def revised_episode(old: Episode, new: Episode) -> Episode:
    """``new`` (checked) as it replaces ``old``: same agent, ``recorded_at`` kept."""
    if new.agent_id != old.agent_id:
        raise InvalidInputError("agent_id cannot change", field="agent_id")
    update: dict[str, Any] = {
        "recorded_at": old.recorded_at,
        "valid_from": new.valid_from or old.valid_from,
    }
    if old.content != new.content and same_vector(new.embedding, old.embedding):
        # The caller passed back the embedding of the old content: it no longer fits.
        update.update(embedding=None, embedding_model=None)
    stored = new.model_copy(update=update)
    check_interval(stored.valid_from, stored.valid_to)
    return stored


def invalidated(old: Episode, end: datetime) -> Episode:
    """``old`` with its validity ended at ``end``, which must come after it began."""
    if old.valid_from is not None and end <= old.valid_from:
        raise InvalidInputError("at must be after the episode's valid_from", field="at")
    return old.model_copy(update={"valid_to": end})


def revised_entity(old: Entity, new: Entity, now: datetime) -> Entity:
    """``new`` (checked) as it replaces ``old`` at ``now``: same agent, ``created_at`` kept."""
    if new.agent_id != old.agent_id:
        raise InvalidInputError("agent_id cannot change", field="agent_id")
    return new.model_copy(update={"created_at": old.created_at, "updated_at": now})


def revised_relationship(old: Relationship, new: Relationship) -> Relationship:
    """``new`` (checked) as it replaces ``old``: same ends, ``created_at`` kept."""
    if (new.source_entity_id, new.target_entity_id) != (
        old.source_entity_id,
        old.target_entity_id,
    ):
        raise InvalidInputError("a relationship's ends cannot change", field="source_entity_id")
    update = {"created_at": old.created_at, "valid_from": new.valid_from or old.valid_from}
    stored = new.model_copy(update=update)
    check_interval(stored.valid_from, stored.valid_to)
    return stored

"""Input checks for memory items, shared by every backend so that they agree."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID

from stores.common.checks import NAME_MAX_LENGTH, check_fraction, check_name, plain_json
from stores.common.validation import check_text, parse_enum, parse_id, validate_embedding
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
    "optional_id",
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
    """Validate an episode (text sizes, embedding, JSON metadata, importance)."""
    check_text(episode.content, "content")
    check_text(episode.group_id, "group_id", NAME_MAX_LENGTH)
    check_text(episode.embedding_model, "embedding_model", NAME_MAX_LENGTH)
    check_fraction(episode.importance, "importance")
    embedding = validate_embedding(episode.embedding, dimensions)
    metadata = plain_json(episode.metadata, "metadata")
    return episode.model_copy(update={"embedding": embedding, "metadata": metadata}, deep=True)


def checked_entity(entity: Entity) -> Entity:
    """Validate an entity."""
    check_name(entity.name)
    check_name(entity.entity_type, "entity_type")
    check_text(entity.canonical_name, "canonical_name", NAME_MAX_LENGTH)
    attributes = plain_json(entity.attributes, "attributes")
    return entity.model_copy(update={"attributes": attributes}, deep=True)


def checked_relationship(relationship: Relationship) -> Relationship:
    """Validate a relationship."""
    check_name(relationship.relationship_type, "relationship_type")
    check_fraction(relationship.confidence, "confidence")
    metadata = plain_json(relationship.metadata, "metadata")
    return relationship.model_copy(update={"metadata": metadata}, deep=True)


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

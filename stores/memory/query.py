"""The listings a MemoryStore answers, parsed once and shared by every backend.

A :class:`Listing` names which items of one kind a call selects and in what order; the
in-memory backend keeps the items that :meth:`Listing.matches`, the PostgreSQL backend turns
the same fields into a WHERE clause, so the two cannot select differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from stores.common.keyset import TIME_KEY, as_uuid, cursor_key
from stores.common.validation import check_limit, check_text, parse_enum, parse_id
from stores.memory import checks
from stores.memory.models import (
    Entity,
    Episode,
    EpisodeType,
    Relationship,
    RelationshipDirection,
)
from stores.memory.models import valid_at as is_valid_at

M = TypeVar("M", Episode, Entity, Relationship)

NEWEST_RECORDED = ("recorded_at", "id")
"""The order of episode listings (newest first)."""
OLDEST_CREATED = ("created_at", "id")
"""The order of entity and relationship listings (oldest first)."""
BY_ID = ("id",)
"""The order of the embedding backfill's listing, across tenants."""


@dataclass(frozen=True)
class Listing(Generic[M]):
    """Which items of ``kind`` a call selects, in which order, and the page to read.

    Every filter left at its default selects everything: ``equals`` maps a field to the
    value it must hold; ``types`` the values ``type_field`` may hold; ``valid_at`` a time
    the item's validity must cover; ``ends`` the entities a relationship must start from
    (OUTGOING), end at (INCOMING) or touch (BOTH); ``stale_for`` an embedding model, keeping
    episodes with content whose embedding is missing or made by another model.
    """

    kind: type[M]
    equals: dict[str, Any]
    order: tuple[str, ...] = OLDEST_CREATED
    descending: bool = False
    after: tuple[Any, ...] | None = None
    limit: int = 100
    type_field: str = "episode_type"
    types: frozenset[str] | None = None
    valid_at: datetime | None = None
    ends: frozenset[UUID] = field(default_factory=frozenset)
    direction: RelationshipDirection = RelationshipDirection.BOTH
    stale_for: str | None = None

    def key(self, item: M) -> tuple[Any, ...]:
        """The sort key of ``item``, from which cursors are made."""
        return tuple(getattr(item, name) for name in self.order)

    @property
    def outgoing(self) -> bool:
        """Whether relationships starting from ``ends`` are selected."""
        return self.direction in (RelationshipDirection.OUTGOING, RelationshipDirection.BOTH)

    @property
    def incoming(self) -> bool:
        """Whether relationships ending at ``ends`` are selected."""
        return self.direction in (RelationshipDirection.INCOMING, RelationshipDirection.BOTH)

    def matches(self, item: M) -> bool:
        """True if ``item`` belongs in this listing (the cursor included)."""
        if any(getattr(item, name) != value for name, value in self.equals.items()):
            return False
        if self.types is not None and getattr(item, self.type_field) not in self.types:
            return False
        if (
            not isinstance(item, Entity)
            and self.valid_at is not None
            and not is_valid_at(item.valid_from, item.valid_to, self.valid_at)
        ):
            return False
        if isinstance(item, Relationship) and self.ends and not self.touches(item):
            return False
        if isinstance(item, Episode) and self.stale_for is not None and not self.stale(item):
            return False
        if self.after is None:
            return True
        return self.key(item) < self.after if self.descending else self.key(item) > self.after

    def stale(self, episode: Episode) -> bool:
        """Whether ``episode`` has content and no embedding made by ``stale_for``."""
        return bool(episode.content) and (
            episode.embedding is None or episode.embedding_model != self.stale_for
        )

    def touches(self, relationship: Relationship) -> bool:
        """Whether ``relationship`` leaves or reaches ``ends`` in this listing's direction."""
        return (self.outgoing and relationship.source_entity_id in self.ends) or (
            self.incoming and relationship.target_entity_id in self.ends
        )

    def around(self, entity_ids: Sequence[UUID]) -> Listing[M]:
        """This listing, touching ``entity_ids`` instead (a traversal's next frontier)."""
        return replace(self, ends=frozenset(entity_ids))


def episodes(
    tenant_id: UUID | str,
    agent_id: UUID | str,
    customer_profile_id: UUID | str | None,
    session_id: UUID | str | None,
    group_id: str | None,
    episode_types: Sequence[EpisodeType | str] | None,
    when: datetime | None,
) -> Listing[Episode]:
    """Parse the filters of ``list_episodes`` and ``vector_search_episodes``."""
    equals: dict[str, Any] = {
        "tenant_id": parse_id(tenant_id, "tenant_id"),
        "agent_id": parse_id(agent_id, "agent_id"),
    }
    _optional(
        equals,
        "customer_profile_id",
        checks.optional_id(customer_profile_id, "customer_profile_id"),
    )
    _optional(equals, "session_id", checks.optional_id(session_id, "session_id"))
    check_text(group_id, "group_id")
    _optional(equals, "group_id", group_id)
    types = checks.episode_types(episode_types)
    return Listing(
        Episode,
        equals,
        NEWEST_RECORDED,
        descending=True,
        types=None if types is None else frozenset(t.value for t in types),
        valid_at=checks.checked_when(when, "valid_at"),
    )


def entities(
    tenant_id: UUID | str,
    agent_id: UUID | str,
    entity_type: str | None,
    customer_profile_id: UUID | str | None,
    canonical_name: str | None,
) -> Listing[Entity]:
    """Parse the filters of ``list_entities``."""
    equals: dict[str, Any] = {
        "tenant_id": parse_id(tenant_id, "tenant_id"),
        "agent_id": parse_id(agent_id, "agent_id"),
    }
    customer = checks.optional_id(customer_profile_id, "customer_profile_id")
    check_text(entity_type, "entity_type")
    check_text(canonical_name, "canonical_name")
    _optional(equals, "entity_type", entity_type)
    _optional(equals, "customer_profile_id", customer)
    _optional(equals, "canonical_name", canonical_name)
    return Listing(Entity, equals)


def relationships(
    tenant_id: UUID | str,
    entity_id: UUID | str,
    direction: RelationshipDirection | str,
    types: frozenset[str] | None,
    when: datetime | None,
) -> Listing[Relationship]:
    """Parse the filters of ``list_relationships`` and ``traverse`` (``types`` come parsed)."""
    return Listing(
        Relationship,
        {"tenant_id": parse_id(tenant_id, "tenant_id")},
        type_field="relationship_type",
        ends=frozenset({parse_id(entity_id, "entity_id")}),
        direction=parse_enum(RelationshipDirection, direction, "direction"),
        types=types,
        valid_at=checks.checked_when(when, "valid_at"),
    )


def stale_embeddings(model: str) -> Listing[Episode]:
    """The episodes of every tenant whose embedding ``model`` must (re)make, by id."""
    return Listing(Episode, {}, BY_ID, stale_for=checks.check_name(model, "model"))


def page(listing: Listing[M], limit: int, cursor: str | None) -> Listing[M]:
    """``listing`` cut to one page, from the page size and cursor given (both checked)."""
    check_limit(limit)
    kinds = (as_uuid,) if listing.order == BY_ID else TIME_KEY
    return replace(listing, after=cursor_key(cursor, kinds), limit=limit)


def _optional(equals: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        equals[name] = value

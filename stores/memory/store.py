"""The MemoryStore interface: episodes with vector search, and an entity graph.

Shared rules for every method:

- ``tenant_id`` comes first and scopes everything; an id belonging to another tenant behaves
  exactly like an id that does not exist.
- Bad ids, wrong embedding lengths, NaN/inf components, unknown enum values, oversized text
  and malformed cursors raise :class:`~stores.errors.InvalidInputError` before anything is
  written.
- ``get_*`` returns None for a missing item; ``update_*`` raises NotFoundError; ``delete_*``
  returns whether something was deleted. Memory is deleted for good (no soft delete); to
  end a fact's validity instead, set ``valid_to``.
- ``recorded_at`` / ``created_at`` / ``updated_at`` come from the store's clock, and a
  ``valid_from`` left as None becomes the time of recording.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from stores.common.arguments import ParsesArguments
from stores.common.pagination import Page
from stores.memory.models import (
    Entity,
    Episode,
    EpisodeType,
    Neighbor,
    Relationship,
    RelationshipDirection,
)

DEFAULT_PAGE_SIZE = 100
MAX_TRAVERSAL_DEPTH = 5


class MemoryStore(ParsesArguments, ABC):
    """Every tenant's agent memory (see the module docstring for shared rules)."""

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """The embedding length every episode embedding must have."""

    @abstractmethod
    def add_episode(self, episode: Episode) -> Episode:
        """Store a new episode and return the stored copy; DuplicateError if the id exists."""

    @abstractmethod
    def add_episodes(self, episodes: Sequence[Episode]) -> list[Episode]:
        """Store several episodes at once: all of them, or (on any error) none."""

    @abstractmethod
    def get_episode(self, tenant_id: UUID | str, episode_id: UUID | str) -> Episode | None:
        """Return the episode, or None."""

    @abstractmethod
    def list_episodes(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        customer_profile_id: UUID | str | None = None,
        session_id: UUID | str | None = None,
        group_id: str | None = None,
        episode_types: Sequence[EpisodeType | str] | None = None,
        valid_at: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Episode]:
        """List an agent's episodes, newest recorded first, with optional filters.

        ``valid_at`` keeps the episodes valid at that time; ``episode_types`` keeps those of
        any of the given types.
        """

    @abstractmethod
    def update_episode(self, episode: Episode) -> Episode:
        """Replace the episode's fields (``recorded_at`` is kept) and return the stored copy.

        The agent cannot change (InvalidInputError on ``agent_id``). When ``content``
        changes but the embedding passed is the stored one, the stale embedding is dropped.
        """

    @abstractmethod
    def invalidate_episode(
        self, tenant_id: UUID | str, episode_id: UUID | str, *, at: datetime | None = None
    ) -> Episode:
        """End the episode's validity at ``at`` (default: now) and return it.

        NotFoundError if missing; InvalidInputError if ``at`` is not after ``valid_from``.
        """

    @abstractmethod
    def delete_episode(self, tenant_id: UUID | str, episode_id: UUID | str) -> bool:
        """Delete the episode; False if it was absent."""

    @abstractmethod
    def delete_customer_memory(self, tenant_id: UUID | str, customer_profile_id: UUID | str) -> int:
        """Delete every episode and entity of one customer (with the entities'
        relationships), in one transaction; returns how many episodes and entities went."""

    @abstractmethod
    def vector_search_episodes(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        embedding: Sequence[float],
        *,
        limit: int = 10,
        min_score: float | None = None,
        customer_profile_id: UUID | str | None = None,
        session_id: UUID | str | None = None,
        episode_types: Sequence[EpisodeType | str] | None = None,
        valid_at: datetime | None = None,
        include_embeddings: bool = False,
    ) -> list[tuple[Episode, float]]:
        """Return the agent's episodes whose content is closest to ``embedding``, best first.

        The score is the cosine similarity (1 is identical). Returns min(limit, matching
        episodes) results, those scoring below ``min_score`` left out; episodes without an
        embedding are never returned. The filters are those of :meth:`list_episodes`. The
        episodes come without their embeddings (``embedding`` is None) unless
        ``include_embeddings`` is true.
        """

    @abstractmethod
    def list_episodes_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Episode]:
        """Across all tenants, episodes with no embedding or one made by another model.

        For the embedding backfill; ordered by ``id``.
        """

    @abstractmethod
    def set_episode_embedding(
        self,
        tenant_id: UUID | str,
        episode_id: UUID | str,
        embedding: Sequence[float],
        model: str,
        *,
        source_text: str | None = None,
    ) -> bool:
        """Store the embedding of the episode's content, made by ``model``.

        With ``source_text``, only if the content is still that text. Returns whether it
        was stored (False for a missing episode).
        """

    @abstractmethod
    def add_entity(self, entity: Entity) -> Entity:
        """Store a new entity; DuplicateError if the id exists."""

    @abstractmethod
    def get_entity(self, tenant_id: UUID | str, entity_id: UUID | str) -> Entity | None:
        """Return the entity, or None."""

    @abstractmethod
    def list_entities(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        entity_type: str | None = None,
        customer_profile_id: UUID | str | None = None,
        canonical_name: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Entity]:
        """List an agent's entities, oldest first, optionally filtered."""

    @abstractmethod
    def update_entity(self, entity: Entity) -> Entity:
        """Replace the entity's fields (``created_at`` kept); the agent cannot change."""

    @abstractmethod
    def delete_entity(self, tenant_id: UUID | str, entity_id: UUID | str) -> bool:
        """Delete the entity and every relationship touching it; False if absent."""

    @abstractmethod
    def add_relationship(self, relationship: Relationship) -> Relationship:
        """Store a relationship between two entities of the tenant.

        NotFoundError if either entity is missing (or another tenant's); DuplicateError if
        the same (source, target, type, valid_from) exists.
        """

    @abstractmethod
    def get_relationship(
        self, tenant_id: UUID | str, relationship_id: UUID | str
    ) -> Relationship | None:
        """Return the relationship, or None."""

    @abstractmethod
    def update_relationship(self, relationship: Relationship) -> Relationship:
        """Replace the relationship's type, confidence, validity and metadata.

        Its ends cannot change (InvalidInputError); DuplicateError if the new key is taken.
        """

    @abstractmethod
    def delete_relationship(self, tenant_id: UUID | str, relationship_id: UUID | str) -> bool:
        """Delete the relationship; False if absent."""

    @abstractmethod
    def list_relationships(
        self,
        tenant_id: UUID | str,
        entity_id: UUID | str,
        *,
        direction: RelationshipDirection | str = RelationshipDirection.BOTH,
        relationship_type: str | None = None,
        valid_at: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Relationship]:
        """List the relationships of an entity in the given direction, oldest first."""

    @abstractmethod
    def traverse(
        self,
        tenant_id: UUID | str,
        entity_id: UUID | str,
        *,
        direction: RelationshipDirection | str = RelationshipDirection.BOTH,
        max_depth: int = 2,
        relationship_types: Sequence[str] | None = None,
        valid_at: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> list[Neighbor]:
        """The entities reachable from ``entity_id`` within ``max_depth`` hops.

        Breadth first: each entity appears once, at its smallest depth, with the first
        relationship (oldest by ``(created_at, id)``) that reached it; the start entity is
        not included. ``max_depth`` is 1..5; at most ``limit`` neighbours are returned.
        """

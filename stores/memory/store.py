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
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from uuid import UUID

from stores.common.arguments import ParsesArguments
from stores.common.clock import Clock
from stores.common.keyset import page_of
from stores.common.pagination import Page
from stores.common.validation import check_limit, check_text, parse_id
from stores.common.vectors import check_min_score, checked_query
from stores.memory import checks, query
from stores.memory.graph import Graph, check_depth, traversal_types, walk
from stores.memory.models import (
    Entity,
    Episode,
    EpisodeType,
    Neighbor,
    Relationship,
    RelationshipDirection,
)
from stores.memory.query import Listing, M

DEFAULT_PAGE_SIZE = 100


class MemoryStore(ParsesArguments, ABC):
    """Every tenant's agent memory (see the module docstring for shared rules).

    Backends implement the protected hooks at the end; the public methods check and parse
    their arguments once, here, so that every backend refuses the same inputs alike.
    """

    _clock: Clock

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """The embedding length every episode embedding must have."""

    def add_episode(self, episode: Episode) -> Episode:
        """Store a new episode and return the stored copy; DuplicateError if the id exists."""
        return self.add_episodes([episode])[0]

    def add_episodes(self, episodes: Sequence[Episode]) -> list[Episode]:
        """Store several episodes at once: all of them, or (on any error) none."""
        now = self._clock()
        return self._insert_episodes(
            [checks.new_episode(e, self.dimensions, now) for e in episodes]
        )

    def get_episode(self, tenant_id: UUID | str, episode_id: UUID | str) -> Episode | None:
        """Return the episode, or None."""
        tenant, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        return self._get(Episode, tenant, eid)

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
        listing = query.episodes(
            tenant_id, agent_id, customer_profile_id, session_id, group_id, episode_types, valid_at
        )
        return self._page(query.page(listing, limit, cursor))

    def update_episode(self, episode: Episode) -> Episode:
        """Replace the episode's fields (``recorded_at`` is kept) and return the stored copy.

        The agent cannot change (InvalidInputError on ``agent_id``). When ``content``
        changes but the embedding passed is the stored one, the stale embedding is dropped.
        """
        item = checks.checked_episode(episode, self.dimensions)
        return self._replace(
            Episode, item.tenant_id, item.id, lambda old: checks.revised_episode(old, item)
        )

    def invalidate_episode(
        self, tenant_id: UUID | str, episode_id: UUID | str, *, at: datetime | None = None
    ) -> Episode:
        """End the episode's validity at ``at`` (default: now) and return it.

        NotFoundError if missing; InvalidInputError if ``at`` is not after ``valid_from``.
        """
        tenant, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        checks.checked_when(at, "at")
        return self._replace(
            Episode, tenant, eid, lambda old: checks.invalidated(old, at or self._clock())
        )

    def delete_episode(self, tenant_id: UUID | str, episode_id: UUID | str) -> bool:
        """Delete the episode; False if it was absent."""
        tenant, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        return self._delete(Episode, tenant, eid)

    def delete_customer_memory(self, tenant_id: UUID | str, customer_profile_id: UUID | str) -> int:
        """Delete every episode and entity of one customer (with the entities'
        relationships), in one transaction; returns how many episodes and entities went."""
        tenant = parse_id(tenant_id, "tenant_id")
        return self._delete_customer(tenant, parse_id(customer_profile_id, "customer_profile_id"))

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
        vector = checked_query(embedding, self.dimensions)
        check_min_score(min_score)
        check_limit(limit)
        listing = query.episodes(
            tenant_id, agent_id, customer_profile_id, session_id, None, episode_types, valid_at
        )
        # Hits come best first, so those at or above the threshold are a prefix of them.
        hits = self._search(listing, vector, limit, include_embeddings)
        return [(e, score) for e, score in hits if min_score is None or score >= min_score]

    def list_episodes_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Episode]:
        """Across all tenants, episodes with no embedding or one made by another model.

        For the embedding backfill; ordered by ``id``.
        """
        return self._page(query.page(query.stale_embeddings(model), limit, cursor))

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
        tenant, eid = parse_id(tenant_id, "tenant_id"), parse_id(episode_id, "episode_id")
        vector = checked_query(embedding, self.dimensions)
        checks.check_name(model, "model")
        check_text(source_text, "source_text")
        return self._set_embedding(tenant, eid, vector, model, source_text)

    def add_entity(self, entity: Entity) -> Entity:
        """Store a new entity; DuplicateError if the id exists."""
        item = checks.checked_entity(entity)
        now = self._clock()
        return self._insert_entity(item.model_copy(update={"created_at": now, "updated_at": now}))

    def get_entity(self, tenant_id: UUID | str, entity_id: UUID | str) -> Entity | None:
        """Return the entity, or None."""
        return self._get(Entity, parse_id(tenant_id, "tenant_id"), parse_id(entity_id, "entity_id"))

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
        listing = query.entities(
            tenant_id, agent_id, entity_type, customer_profile_id, canonical_name
        )
        return self._page(query.page(listing, limit, cursor))

    def update_entity(self, entity: Entity) -> Entity:
        """Replace the entity's fields (``created_at`` kept); the agent cannot change."""
        item = checks.checked_entity(entity)
        return self._replace(
            Entity,
            item.tenant_id,
            item.id,
            lambda old: checks.revised_entity(old, item, self._clock()),
        )

    def delete_entity(self, tenant_id: UUID | str, entity_id: UUID | str) -> bool:
        """Delete the entity and every relationship touching it; False if absent."""
        return self._delete(
            Entity, parse_id(tenant_id, "tenant_id"), parse_id(entity_id, "entity_id")
        )

    def add_relationship(self, relationship: Relationship) -> Relationship:
        """Store a relationship between two entities of the tenant.

        NotFoundError if either entity is missing (or another tenant's); DuplicateError if
        the same (source, target, type, valid_from) exists.
        """
        item = checks.checked_relationship(relationship)
        now = self._clock()
        item = item.model_copy(update={"created_at": now, "valid_from": item.valid_from or now})
        checks.check_interval(item.valid_from, item.valid_to)
        return self._insert_relationship(item)

    def get_relationship(
        self, tenant_id: UUID | str, relationship_id: UUID | str
    ) -> Relationship | None:
        """Return the relationship, or None."""
        tenant = parse_id(tenant_id, "tenant_id")
        return self._get(Relationship, tenant, parse_id(relationship_id, "relationship_id"))

    def update_relationship(self, relationship: Relationship) -> Relationship:
        """Replace the relationship's type, confidence, validity and metadata.

        Its ends cannot change (InvalidInputError); DuplicateError if the new key is taken.
        """
        item = checks.checked_relationship(relationship)
        return self._replace(
            Relationship,
            item.tenant_id,
            item.id,
            lambda old: checks.revised_relationship(old, item),
        )

    def delete_relationship(self, tenant_id: UUID | str, relationship_id: UUID | str) -> bool:
        """Delete the relationship; False if absent."""
        tenant = parse_id(tenant_id, "tenant_id")
        return self._delete(Relationship, tenant, parse_id(relationship_id, "relationship_id"))

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
        check_text(relationship_type, "relationship_type")
        types = None if relationship_type is None else frozenset({relationship_type})
        listing = query.relationships(tenant_id, entity_id, direction, types, valid_at)
        return self._page(query.page(listing, limit, cursor))

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
        types = traversal_types(relationship_types)
        listing = query.relationships(tenant_id, entity_id, direction, types, valid_at)
        check_depth(max_depth)
        check_limit(limit)
        with self._graph(parse_id(tenant_id, "tenant_id")) as graph:
            return walk(graph, listing, max_depth, limit)

    def _page(self, listing: Listing[M]) -> Page[M]:
        return page_of(self._list(listing), listing.limit, listing.key)

    @abstractmethod
    def _insert_episodes(self, episodes: list[Episode]) -> list[Episode]:
        """Store checked, stamped episodes: all of them, or none (see :meth:`add_episodes`)."""

    @abstractmethod
    def _insert_entity(self, entity: Entity) -> Entity:
        """Store a checked, stamped entity (see :meth:`add_entity`)."""

    @abstractmethod
    def _insert_relationship(self, relationship: Relationship) -> Relationship:
        """Store a checked, stamped relationship (see :meth:`add_relationship`)."""

    @abstractmethod
    def _get(self, kind: type[M], tenant_id: UUID, item_id: UUID) -> M | None:
        """The tenant's item of ``kind`` with this id, or None."""

    @abstractmethod
    def _replace(
        self, kind: type[M], tenant_id: UUID, item_id: UUID, change: Callable[[M], M]
    ) -> M:
        """Replace the tenant's item of ``kind`` (NotFoundError naming it if there is none)
        by what ``change`` makes of it, atomically; DuplicateError if that takes a
        relationship's key."""

    @abstractmethod
    def _delete(self, kind: type[M], tenant_id: UUID, item_id: UUID) -> bool:
        """Delete the tenant's item of ``kind`` (an entity with its relationships)."""

    @abstractmethod
    def _delete_customer(self, tenant_id: UUID, customer_profile_id: UUID) -> int:
        """As :meth:`delete_customer_memory`, on parsed ids."""

    @abstractmethod
    def _list(self, listing: Listing[M]) -> list[M]:
        """Up to ``listing.limit + 1`` items the listing matches, in its order."""

    @abstractmethod
    def _search(
        self, listing: Listing[Episode], vector: list[float], limit: int, embeddings: bool
    ) -> list[tuple[Episode, float]]:
        """The ``limit`` embedded episodes the listing matches closest to ``vector``, best
        first, with their cosine similarity; their embeddings only if ``embeddings``."""

    @abstractmethod
    def _set_embedding(
        self, tenant: UUID, eid: UUID, vector: list[float], model: str, text: str | None
    ) -> bool:
        """As :meth:`set_episode_embedding`, on parsed arguments."""

    @abstractmethod
    def _graph(self, tenant_id: UUID) -> AbstractContextManager[Graph]:
        """Reads of the tenant's graph from one snapshot, for a traversal."""

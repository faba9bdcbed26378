"""The breadth-first traversal every MemoryStore backend runs, so traversals agree.

A backend supplies a :class:`Graph`, two reads over one consistent view of a tenant's
entities and relationships; :func:`walk` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple
from uuid import UUID

from stores.common.validation import check_text
from stores.errors import InvalidInputError
from stores.memory.models import Entity, Neighbor, Relationship
from stores.memory.query import Listing

MAX_TRAVERSAL_DEPTH = 5
"""The most hops a traversal may take (``max_depth`` runs from 1 to this)."""


class Graph(NamedTuple):
    """Reads of one tenant's graph, all from the same snapshot."""

    relationships: Callable[[Listing[Relationship]], list[Relationship]]
    """Every relationship a listing matches, oldest first by ``(created_at, id)``."""
    entities: Callable[[Sequence[UUID]], dict[UUID, Entity]]
    """The tenant's entities among these ids, by id (missing ones left out)."""


def traversal_types(relationship_types: Sequence[str] | None) -> frozenset[str] | None:
    """Parse a relationship-type filter of a traversal (None means any type)."""
    if relationship_types is None:
        return None
    if isinstance(relationship_types, str) or not isinstance(relationship_types, Iterable):
        raise InvalidInputError(
            "relationship_types must be a list of types", field="relationship_types"
        )
    for t in relationship_types:
        check_text(t, "relationship_types")
    return frozenset(relationship_types)


def check_depth(max_depth: int) -> None:
    """Reject a traversal depth outside 1..MAX_TRAVERSAL_DEPTH."""
    if (
        isinstance(max_depth, bool)
        or not isinstance(max_depth, int)
        or not (1 <= max_depth <= MAX_TRAVERSAL_DEPTH)
    ):
        raise InvalidInputError(
            f"max_depth must be from 1 to {MAX_TRAVERSAL_DEPTH}", field="max_depth"
        )


def walk(graph: Graph, near: Listing[Relationship], max_depth: int, limit: int) -> list[Neighbor]:
    """The entities reachable from the one entity ``near`` touches, breadth first.

    Each entity is reached once, at its smallest depth, through the oldest relationship
    that reaches it; the start entity is never among them. At most ``limit`` come back.
    """
    (start,) = near.ends
    if not graph.entities([start]):
        return []
    seen, frontier = {start}, {start}
    found: list[Neighbor] = []
    for depth in range(1, max_depth + 1):
        step: list[tuple[Relationship, UUID]] = []
        for rel in graph.relationships(near.around(sorted(frontier))):
            for reached, via in (
                (rel.target_entity_id, near.outgoing and rel.source_entity_id in frontier),
                (rel.source_entity_id, near.incoming and rel.target_entity_id in frontier),
            ):
                if via and reached not in seen:
                    seen.add(reached)
                    step.append((rel, reached))
        step = step[: limit - len(found)]
        entities = graph.entities([reached for _, reached in step])
        found.extend(
            Neighbor(entity=entities[reached], relationship=rel, depth=depth)
            for rel, reached in step
        )
        frontier = {reached for _, reached in step}
        if not frontier or len(found) >= limit:
            break
    return found

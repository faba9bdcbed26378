"""Breadth-first traversal rules shared by every MemoryStore backend, so traversals agree."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from stores.common.validation import check_text
from stores.errors import InvalidInputError
from stores.memory.models import Relationship, RelationshipDirection
from stores.memory.store import MAX_TRAVERSAL_DEPTH


def traversal_types(relationship_types: Sequence[str] | None) -> set[str] | None:
    """Parse a relationship-type filter of a traversal (None means any type)."""
    if relationship_types is None:
        return None
    if isinstance(relationship_types, str) or not isinstance(relationship_types, Iterable):
        raise InvalidInputError(
            "relationship_types must be a list of types", field="relationship_types"
        )
    for t in relationship_types:
        check_text(t, "relationship_types")
    return set(relationship_types)


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


def next_hop(
    relationships: list[Relationship],
    frontier: set[UUID],
    seen: set[UUID],
    direction: RelationshipDirection,
) -> list[tuple[Relationship, UUID]]:
    """The entities first reached from ``frontier`` through ``relationships`` (in order).

    ``seen`` is updated with them. Shared by every backend so traversals agree.
    """
    out = direction in (RelationshipDirection.OUTGOING, RelationshipDirection.BOTH)
    inc = direction in (RelationshipDirection.INCOMING, RelationshipDirection.BOTH)
    step: list[tuple[Relationship, UUID]] = []
    for rel in relationships:
        for reached, via in (
            (rel.target_entity_id, out and rel.source_entity_id in frontier),
            (rel.source_entity_id, inc and rel.target_entity_id in frontier),
        ):
            if via and reached not in seen:
                seen.add(reached)
                step.append((rel, reached))
    return step

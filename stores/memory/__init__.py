"""Agent memory: episodes with vector search, entities and their relationships."""

from typing import TYPE_CHECKING

from stores.common.lazy import lazy_attributes
from stores.memory.inmemory import InMemoryMemoryStore
from stores.memory.models import (
    Entity,
    Episode,
    EpisodeType,
    Neighbor,
    Relationship,
    RelationshipDirection,
)
from stores.memory.store import MemoryStore

if TYPE_CHECKING:
    from stores.memory.postgres import PostgresMemoryStore

__all__ = [
    "Entity",
    "Episode",
    "EpisodeType",
    "InMemoryMemoryStore",
    "MemoryStore",
    "Neighbor",
    "PostgresMemoryStore",
    "Relationship",
    "RelationshipDirection",
]


__getattr__ = lazy_attributes(__name__, {"PostgresMemoryStore": "stores.memory.postgres"})

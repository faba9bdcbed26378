"""Agent memory: episodes with vector search, entities and their relationships."""

from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    # The PostgreSQL backend pulls in SQLAlchemy and pgvector; import it only when asked for.
    if name == "PostgresMemoryStore":
        import importlib

        return importlib.import_module("stores.memory.postgres").PostgresMemoryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

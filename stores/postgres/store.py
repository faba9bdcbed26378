"""What every PostgreSQL store with vector columns shares: its engine and its searcher."""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Self

import sqlalchemy as sa

from stores.common.clock import Clock, utc_now
from stores.postgres.engine import create_engine, translated
from stores.postgres.vectors import VectorSearcher, VectorSearchPolicy, embedding_dimensions


class PostgresVectorStore:
    """Engine ownership, the embedding dimension read from the schema, and vector search.

    Subclasses name the table whose ``embedding`` column fixes the dimension.
    """

    dimensions_table: ClassVar[str]

    def __init__(
        self,
        engine: sa.Engine,
        *,
        dimensions: int | None = None,
        clock: Clock = utc_now,
        search_policy: VectorSearchPolicy | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._dims = dimensions
        self._dims_lock = threading.Lock()
        self._searcher = VectorSearcher(search_policy)
        self._owns_engine = False

    @classmethod
    def from_url(
        cls,
        database_url: str,
        *,
        dimensions: int | None = None,
        clock: Clock = utc_now,
        pool_size: int = 5,
        max_overflow: int = 10,
        search_policy: VectorSearchPolicy | None = None,
    ) -> Self:
        """Create a store with its own engine (closed by :meth:`close`).

        With ``dimensions=None`` the embedding dimension is read from the schema.
        """
        engine = create_engine(database_url, pool_size=pool_size, max_overflow=max_overflow)
        store = cls(engine, dimensions=dimensions, clock=clock, search_policy=search_policy)
        store._owns_engine = True
        return store

    def close(self) -> None:
        """Release the connection pool if this store created it."""
        if self._owns_engine:
            self._engine.dispose()

    @property
    def searcher(self) -> VectorSearcher:
        """The vector searcher (exposes the search plan for diagnostics)."""
        return self._searcher

    @property
    def dimensions(self) -> int:
        """The embedding dimension of this store's vector columns."""
        with self._dims_lock:
            if self._dims is None:
                with translated(), self._engine.connect() as conn:
                    self._dims = embedding_dimensions(conn, self.dimensions_table)
            return self._dims

    def _read(self, stmt: sa.Select[Any]) -> list[sa.RowMapping]:
        with translated(), self._engine.connect() as conn:
            return list(conn.execute(stmt).mappings())

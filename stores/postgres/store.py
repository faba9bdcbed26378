"""What every PostgreSQL store shares: its engine, and for vector tables, its searcher."""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Self

import sqlalchemy as sa

from stores.common.clock import Clock, utc_now
from stores.driver_errors import TranslatedEdge, translated
from stores.postgres.engine import create_engine, tune_sessions
from stores.postgres.vectors import VectorSearcher, VectorSearchPolicy, embedding_dimensions


class PostgresStore(TranslatedEdge):
    """A store on an engine it is given, or on one it creates from a URL and disposes of.

    Every public method runs inside the PostgreSQL error policy (``stores.driver_errors``)."""

    _driver_errors = translated

    def __init__(self, engine: sa.Engine, *, clock: Clock = utc_now) -> None:
        self._engine = tune_sessions(engine)
        self._clock = clock
        self._owns_engine = False

    @classmethod
    def from_url(
        cls,
        database_url: str,
        *,
        clock: Clock = utc_now,
        pool_size: int = 5,
        max_overflow: int = 10,
    ) -> Self:
        """Create a store with its own engine (closed by :meth:`close`)."""
        return cls._owning(database_url, pool_size, max_overflow, clock=clock)

    @classmethod
    def _owning(cls, database_url: str, pool_size: int, max_overflow: int, **kwargs: Any) -> Self:
        engine = create_engine(database_url, pool_size=pool_size, max_overflow=max_overflow)
        store = cls(engine, **kwargs)
        store._owns_engine = True
        return store

    def close(self) -> None:
        """Release the connection pool if this store created it."""
        if self._owns_engine:
            self._engine.dispose()

    def _read(self, stmt: sa.Select[Any]) -> list[sa.RowMapping]:
        with self._engine.connect() as conn:
            return list(conn.execute(stmt).mappings())


class PostgresVectorStore(PostgresStore):
    """A store with embedding columns: the dimension read from the schema, vector search.

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
        super().__init__(engine, clock=clock)
        self._dims = dimensions
        self._dims_lock = threading.Lock()
        self._searcher = VectorSearcher(search_policy)

    @classmethod
    def from_url(
        cls,
        database_url: str,
        *,
        clock: Clock = utc_now,
        pool_size: int = 5,
        max_overflow: int = 10,
        dimensions: int | None = None,
        search_policy: VectorSearchPolicy | None = None,
    ) -> Self:
        """Create a store with its own engine (closed by :meth:`close`).

        With ``dimensions=None`` the embedding dimension is read from the schema.
        """
        return cls._owning(
            database_url,
            pool_size,
            max_overflow,
            clock=clock,
            dimensions=dimensions,
            search_policy=search_policy,
        )

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

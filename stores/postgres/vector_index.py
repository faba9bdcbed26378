"""The quantized HNSW index of embedded tables, and the policy searches use it by.

Every embedded table has one HNSW index over a *quantized* copy of its embeddings
(:data:`QUANTIZER`, declared in ``schema.py``): half the bytes of the full vectors (or a
sixteenth, for bits), so the graph stays in memory and each distance is cheap.
:class:`VectorSearchPolicy` says when a search leaves the index alone (few matching rows),
how many candidates it takes from the index, and the settings the index scan runs with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pgvector.sqlalchemy import BIT, HALFVEC

PGVECTOR_MAX_EF_SEARCH = 1000
"""pgvector's upper bound for ``hnsw.ef_search``."""


@dataclass(frozen=True)
class Quantizer:
    """How an embedding is shrunk for the HNSW index, and how the index compares two."""

    name: str
    opclass: str
    operator: str
    expression: Callable[[sa.ColumnElement[Any], int], sa.ColumnElement[Any]]
    max_dimensions: int
    """The most dimensions pgvector's HNSW index takes for this type."""

    def index_key(self, column: sa.ColumnElement[Any], dimensions: int) -> sa.ColumnElement[Any]:
        """The indexed expression over ``column`` (what the search must order by)."""
        return self.expression(column, dimensions)

    def distance(
        self, column: sa.ColumnElement[Any], query: sa.ColumnElement[Any], dimensions: int
    ) -> sa.ColumnElement[float]:
        """The quantized distance between ``column`` and ``query``, as the index orders it."""
        return self.expression(column, dimensions).op(self.operator, return_type=sa.Float)(
            self.expression(query, dimensions)
        )


HALFVEC_QUANTIZER = Quantizer(
    name="halfvec",
    opclass="halfvec_cosine_ops",
    operator="<=>",
    expression=lambda column, dims: sa.cast(column, HALFVEC(dims)),
    max_dimensions=4000,
)
BIT_QUANTIZER = Quantizer(
    name="bit",
    opclass="bit_hamming_ops",
    operator="<~>",
    expression=lambda column, dims: sa.cast(sa.func.binary_quantize(column), BIT(dims)),
    max_dimensions=64000,
)
QUANTIZER = HALFVEC_QUANTIZER
"""The quantizer of every embedding index (``schema.py`` builds the indexes with it)."""


@dataclass(frozen=True)
class VectorSearchPolicy:
    """How vector searches choose between exact search and the quantized HNSW index."""

    exact_max_rows: int = 2000
    """Filters matching at most this many embedded rows are searched exactly."""
    ef_search: int = 100
    """``hnsw.ef_search``: the breadth of the graph search (at least the candidate count).

    Measured at 100k x 1536 with the schema's m=32, ef_construction=128 and 40 candidates:
    recall@10 0.999 on noisy, nearly isotropic vectors (40 gives 0.979).
    """
    candidates: int = 40
    """How many index candidates are re-ranked exactly (at least ``candidate_factor x limit``)."""
    candidate_factor: int = 4
    max_scan_tuples: int = 50_000
    """How many index tuples an iterative scan may visit before giving up on a filter."""

    def __post_init__(self) -> None:
        if self.exact_max_rows < 0 or self.candidates < 1 or self.candidate_factor < 1:
            raise ValueError("need exact_max_rows >= 0, candidates >= 1, candidate_factor >= 1")
        if not 1 <= self.ef_search <= PGVECTOR_MAX_EF_SEARCH:
            raise ValueError("need 1 <= ef_search <= 1000")

    def candidates_for(self, limit: int) -> int:
        """The candidates the index path re-ranks for a search of ``limit`` results."""
        return max(self.candidates, self.candidate_factor * limit)

    def ef_for(self, limit: int) -> int:
        """``hnsw.ef_search`` for a search of ``limit`` results."""
        return min(PGVECTOR_MAX_EF_SEARCH, max(self.ef_search, self.candidates_for(limit)))

    def threshold_for(self, limit: int) -> int:
        """The most matching rows a search of ``limit`` results still ranks exactly."""
        return max(self.exact_max_rows, limit)

    def index_settings(self, limit: int) -> dict[str, str]:
        """The settings (``SET LOCAL``) the index path runs with for ``limit`` results."""
        return {
            # The ORDER BY must come from the HNSW scan, not from a B-tree scan of the
            # filter's rows and a sort of their distances.
            "enable_sort": "off",
            # That setting inflates the plan's estimate past the JIT threshold: compiling
            # would take many times the search (engines hearth makes have it off already;
            # an engine it was given may not).
            "jit": "off",
            "hnsw.ef_search": str(self.ef_for(limit)),
            # Re-ranking restores the exact order, so the cheaper relaxed order will do.
            "hnsw.iterative_scan": "relaxed_order",
            "hnsw.max_scan_tuples": str(self.max_scan_tuples),
        }

"""Filtered vector search on pgvector (0.8 or newer) that is fast, complete and accurate.

Every embedded table has one HNSW index over a *quantized* copy of its embeddings
(:mod:`stores.postgres.vector_index`). A search takes one of two paths:

``exact``
    When few rows match the filter (at most :attr:`VectorSearchPolicy.exact_max_rows`), the
    matching rows are found through the B-tree on the filter columns and ranked exactly on the
    full vectors. No index orders by the full-vector distance, so the ranking is exact by
    construction.
``index``
    The quantized index yields :meth:`VectorSearchPolicy.candidates_for` candidates, with
    ``hnsw.iterative_scan = relaxed_order`` so that the scan goes on until enough of them pass
    the filter; the candidates are then re-ranked exactly on their full vectors. Quantization
    only decides which rows are looked at closely, never the order returned.

The first statement of a filtered search counts the filter's rows (up to the threshold, from
the filter's B-tree) and, behind a one-time condition on that count, also ranks them exactly:
a selective filter costs one round trip. If the index path returns fewer rows than asked
although more match, the search is repeated exactly, so a result is always
``min(limit, matching rows)`` long. Statements are never server-prepared
(``prepare_threshold = None`` on the connection): a prepared generic plan would ignore how
selective this call's filter is. The statements themselves are built in
:mod:`stores.postgres.vector_sql`; the hits' rows carry their embeddings only when the caller
asks for them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from stores.errors import StoreError
from stores.postgres.rows import plain_row, register_vector_types
from stores.postgres.vector_filters import UnrenderableFilter, render_filters
from stores.postgres.vector_index import QUANTIZER, Quantizer, VectorSearchPolicy
from stores.postgres.vector_sql import (
    FILTERS,
    PARAMS,
    Explain,
    StatementKind,
    bounded_count,
    search_params,
)
from stores.postgres.vector_sql import statement as build_statement

# The search's public face; the index's quantizer and policy are imported from here too.
__all__ = [
    "MIN_PGVECTOR",
    "QUANTIZER",
    "Quantizer",
    "SearchOutcome",
    "SearchPlan",
    "VectorSearchPolicy",
    "VectorSearcher",
    "embedding_dimensions",
]

SearchPath = Literal["exact", "index"]

MIN_PGVECTOR = (0, 8)
"""Iterative index scans, ``halfvec`` and ``binary_quantize`` all exist from 0.8 on."""


@dataclass(frozen=True)
class SearchPlan:
    """The path a search takes, and the settings it runs with."""

    path: SearchPath
    matching_rows: int
    """The rows the filter matches, counted exactly up to the exact-search threshold."""
    settings: dict[str, str]
    statement: sa.Select[Any]
    params: dict[str, Any]
    """The values of the statement's ``hearth_*`` parameters."""


@dataclass
class SearchOutcome:
    """The rows found, best first, with their cosine similarity, and how they were found."""

    rows: list[tuple[dict[str, Any], float]]
    path: SearchPath
    fell_back: bool = False
    """The index path returned too few rows and the search was repeated exactly."""


_VERSION = re.compile(r"^(\d+)\.(\d+)")


class VectorSearcher:
    """Runs filtered cosine searches on one database (its pgvector version checked once).

    A search's statements are built and compiled once per table, kind and dimension, with a
    placeholder where the caller's filters go; each call renders its filters (a handful of
    comparisons of columns with values) into that place and runs the text on the driver.
    Building and compiling the nested statements anew costs more than a selective search
    itself (about 1.5 ms against 1 ms). Filters of another shape are run through SQLAlchemy
    whole, the same statements with the filters in place.
    """

    def __init__(
        self, policy: VectorSearchPolicy | None = None, quantizer: Quantizer = QUANTIZER
    ) -> None:
        self.policy = policy or VectorSearchPolicy()
        self.quantizer = quantizer
        self._lock = threading.Lock()
        self._version: tuple[int, int] | None = None
        self._compiled: dict[tuple[str, StatementKind, bool, int], str] = {}

    def pgvector_version(self, conn: sa.Connection) -> tuple[int, int]:
        """The (major, minor) version of the vector extension, read once."""
        with self._lock:
            if self._version is None:
                raw = conn.execute(
                    sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                ).scalar()
                match = _VERSION.match(str(raw or ""))
                self._version = (int(match[1]), int(match[2])) if match else (0, 0)
            return self._version

    def _check_version(self, conn: sa.Connection) -> None:
        version = self.pgvector_version(conn)
        if version < MIN_PGVECTOR:
            raise StoreError(
                f"vector search needs pgvector {'.'.join(map(str, MIN_PGVECTOR))} or newer; "
                f"this database has {'.'.join(map(str, version))} "
                "(upgrade the server's pgvector, then run the migrations)"
            )

    def statement(
        self,
        kind: StatementKind,
        table: sa.Table,
        filters: Sequence[sa.ColumnElement[bool]],
        dimensions: int,
        embeddings: bool,
    ) -> sa.Select[Any]:
        """The statement of one kind of a search, with ``filters`` in place.

        Its parameters are named ``hearth_*`` (:func:`~stores.postgres.vector_sql.search_params`
        gives their values).
        """
        return build_statement(kind, table, filters, dimensions, embeddings, self.quantizer)

    def plan(
        self,
        conn: sa.Connection,
        table: sa.Table,
        filters: Sequence[sa.ColumnElement[bool]],
        query: Sequence[float],
        limit: int,
        *,
        embeddings: bool = False,
    ) -> SearchPlan:
        """Choose the path for a search (runs the bounded count that decides it)."""
        self._check_version(conn)
        threshold = self.policy.threshold_for(limit)
        matching = bounded_count(conn, table, filters, threshold + 1)
        path: SearchPath = "exact" if matching <= threshold else "index"
        return SearchPlan(
            path,
            matching,
            {} if path == "exact" else self.policy.index_settings(limit),
            self.statement(path, table, filters, len(query), embeddings),
            search_params(self.policy, query, limit),
        )

    def search(
        self,
        conn: sa.Connection,
        table: sa.Table,
        filters: Sequence[sa.ColumnElement[bool]],
        query: Sequence[float],
        limit: int,
        *,
        embeddings: bool = False,
    ) -> SearchOutcome:
        """Search within the connection's current transaction (settings are SET LOCAL).

        ``embeddings`` says whether the rows returned carry their embeddings (decoding 1536
        floats per hit costs more than the rest of the row).
        """
        _prepare(conn)
        self._check_version(conn)
        threshold = self.policy.threshold_for(limit)
        params = search_params(self.policy, query, limit)
        run = _Run(self, conn, table, list(filters), len(query), embeddings, params)
        if filters:
            counted = run("count_then")
            matching = int(counted[0].pop("n")) if counted else 0
            if matching <= threshold:
                return SearchOutcome(_scored(r for r in counted if r["id"] is not None), "exact")
        _apply(conn, self.policy.index_settings(limit))
        rows = _scored(run("index"))
        if len(rows) >= limit:
            return SearchOutcome(rows, "index")
        # Fewer than asked although more rows match: the scan gave up (max_scan_tuples)
        # before enough candidates passed the filter, or the table was emptied meanwhile.
        _apply(conn, {"enable_sort": "on"})
        return SearchOutcome(_scored(run("exact")), "index", fell_back=True)

    def compiled(
        self, conn: sa.Connection, kind: StatementKind, table: sa.Table, dims: int, emb: bool
    ) -> str:
        """The SQL of one kind of statement for ``table``, with the filters' placeholder."""
        key = (table.name, kind, emb, dims)
        sql = self._compiled.get(key)
        if sql is None:
            placeholder = [sa.literal_column(FILTERS, sa.Boolean)]
            sql = str(self.statement(kind, table, placeholder, dims, emb).compile(conn))
            self._compiled[key] = sql
        return sql

    def explain(
        self,
        conn: sa.Connection,
        table: sa.Table,
        filters: Sequence[sa.ColumnElement[bool]],
        query: Sequence[float],
        limit: int,
    ) -> tuple[SearchPlan, str]:
        """The plan a search would take and PostgreSQL's EXPLAIN of its statement."""
        _prepare(conn)
        plan = self.plan(conn, table, filters, query, limit)
        _apply(conn, plan.settings)
        lines = conn.execute(Explain(plan.statement), plan.params).scalars().all()
        return plan, "\n".join(str(line) for line in lines)


class _Run:
    """Runs the statements of one search: rendered text when it can, else SQLAlchemy."""

    def __init__(
        self,
        searcher: VectorSearcher,
        conn: sa.Connection,
        table: sa.Table,
        filters: list[sa.ColumnElement[bool]],
        dimensions: int,
        embeddings: bool,
        params: dict[str, Any],
    ) -> None:
        self.searcher, self.conn, self.table = searcher, conn, table
        self.filters, self.dimensions, self.embeddings = filters, dimensions, embeddings
        self.params = params
        self.rendered: tuple[str, dict[str, Any]] | None = None
        try:
            self.rendered = render_filters(filters, conn.dialect)
        except UnrenderableFilter:
            self.rendered = None

    def __call__(self, kind: StatementKind) -> list[dict[str, Any]]:
        params = {name: self.params[name] for name in PARAMS[kind]}
        if self.rendered is None:
            stmt = self.searcher.statement(
                kind, self.table, self.filters, self.dimensions, self.embeddings
            )
            return [dict(row) for row in self.conn.execute(stmt, params).mappings()]
        fragment, values = self.rendered
        sql = self.searcher.compiled(self.conn, kind, self.table, self.dimensions, self.embeddings)
        driver = self.conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(sql.replace(FILTERS, fragment), {**params, **values})
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _scored(rows: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    return [(plain_row(row), 1.0 - float(row.pop("distance"))) for row in rows]


def _prepare(conn: sa.Connection) -> None:
    """Plans must follow each call's arguments; vectors travel in binary."""
    driver = conn.connection.driver_connection
    if driver is not None and hasattr(driver, "prepare_threshold"):
        driver.prepare_threshold = None
    register_vector_types(conn)


def _apply(conn: sa.Connection, settings: dict[str, str]) -> None:
    if not settings:
        return
    calls = ", ".join(f"set_config(:k{i}, :v{i}, true)" for i in range(len(settings)))
    params: dict[str, str] = {}
    for i, (key, value) in enumerate(settings.items()):
        params[f"k{i}"], params[f"v{i}"] = key, value
    conn.execute(sa.text(f"SELECT {calls}"), params)


def embedding_dimensions(conn: sa.Connection, table: str) -> int:
    """The dimension of ``table.embedding`` as the database defines it (its type modifier)."""
    typmod = conn.execute(
        sa.text(
            "SELECT atttypmod FROM pg_attribute "
            "WHERE attrelid = CAST(:t AS regclass) AND attname = 'embedding'"
        ),
        {"t": table},
    ).scalar()
    if typmod is None or int(typmod) < 1:
        raise StoreError(f"{table}.embedding has no fixed dimension; is the schema migrated?")
    return int(typmod)

"""Filtered vector search on pgvector (0.8 or newer) that is fast, complete and accurate.

Every embedded table has one HNSW index over a *quantized* copy of its embeddings
(:data:`QUANTIZER`, declared in ``schema.py``): half the bytes of the full vectors (or a
sixteenth, for bits), so the graph stays in memory and each distance is cheap. A search takes
one of two paths:

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
selective this call's filter is. Rankings carry ids and distances only; the hits' rows are
fetched afterwards, with their embeddings only when the caller asks for them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from pgvector import Vector
from pgvector.sqlalchemy import BIT, HALFVEC
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    False_,
    Grouping,
    Null,
    True_,
)
from sqlalchemy.sql.expression import ClauseElement, Executable

from stores.errors import StoreError
from stores.postgres.rows import VectorBytes, plain_row, register_vector_types, selectable

SearchPath = Literal["exact", "index"]

PGVECTOR_MAX_EF_SEARCH = 1000
"""pgvector's upper bound for ``hnsw.ef_search``."""

MIN_PGVECTOR = (0, 8)
"""Iterative index scans, ``halfvec`` and ``binary_quantize`` all exist from 0.8 on."""


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


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: sa.Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (COSTS OFF) " + str(compiler.process(element.statement, **kw))


_VERSION = re.compile(r"^(\d+)\.(\d+)")

StatementKind = Literal["count_then", "exact", "index"]

_FILTERS = "hearth_search_filters"
"""Stands for the caller's filters in a statement compiled once per table and kind."""
_Q, _LIMIT, _CANDIDATES, _THRESHOLD, _CAP = (
    "hearth_q",
    "hearth_limit",
    "hearth_candidates",
    "hearth_threshold",
    "hearth_cap",
)
_PARAMS: dict[StatementKind, tuple[str, ...]] = {
    "count_then": (_Q, _LIMIT, _THRESHOLD, _CAP),
    "exact": (_Q, _LIMIT),
    "index": (_Q, _LIMIT, _CANDIDATES),
}


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

    def _threshold(self, limit: int) -> int:
        return max(self.policy.exact_max_rows, limit)

    def _index_settings(self, limit: int) -> dict[str, str]:
        policy = self.policy
        return {
            # The ORDER BY must come from the HNSW scan, not from a B-tree scan of the
            # filter's rows and a sort of their distances.
            "enable_sort": "off",
            # That setting inflates the plan's estimate past the JIT threshold: compiling
            # would take many times the search (engines hearth makes have it off already;
            # an engine it was given may not).
            "jit": "off",
            "hnsw.ef_search": str(policy.ef_for(limit)),
            # Re-ranking restores the exact order, so the cheaper relaxed order will do.
            "hnsw.iterative_scan": "relaxed_order",
            "hnsw.max_scan_tuples": str(policy.max_scan_tuples),
        }

    def _params(self, query: Sequence[float], limit: int) -> dict[str, Any]:
        threshold = self._threshold(limit)
        return {
            _Q: Vector(list(query)),
            _LIMIT: limit,
            _CANDIDATES: self.policy.candidates_for(limit),
            _THRESHOLD: threshold,
            _CAP: threshold + 1,
        }

    def statement(
        self,
        kind: StatementKind,
        table: sa.Table,
        filters: Sequence[sa.ColumnElement[bool]],
        dimensions: int,
        embeddings: bool,
    ) -> sa.Select[Any]:
        """The statement of one kind of a search, with ``filters`` in place.

        Its parameters are named ``hearth_*`` (see :meth:`plan` for their values).
        """
        where = [table.c.embedding.is_not(None), *filters]
        query = sa.bindparam(_Q, type_=VectorBytes())
        if kind == "index":
            candidates = (
                sa.select(table.c.id, table.c.embedding)
                .where(*where)
                .order_by(self.quantizer.distance(table.c.embedding, query, dimensions))
                .limit(sa.bindparam(_CANDIDATES, type_=sa.Integer))
                .subquery("candidates")
            )
            hits = _ranked(candidates.c.id, candidates.c.embedding, query)
            return _with_rows(table, hits, embeddings)
        hits = _ranked(table.c.id, table.c.embedding, query, where)
        exact = _with_rows(table, hits, embeddings)
        if kind == "exact":
            return exact
        # One round trip counts the filter's rows and, when they are few, ranks them. The
        # count leaves the embedding out: an index-only scan of the filter's B-tree can
        # answer it, and rows without one only make the index path fall back. The ranking
        # sits behind a condition on the count that PostgreSQL checks once before running
        # it, so a large filter costs only the bounded count.
        limited: sa.Select[Any] = (
            sa.select(sa.literal_column("1"))
            .select_from(table)
            .where(*filters)
            .limit(sa.bindparam(_CAP, type_=sa.Integer))
        )
        counted = sa.select(sa.func.count().label("n")).select_from(limited.subquery()).subquery()
        ranked = exact.where(counted.c.n <= sa.bindparam(_THRESHOLD, type_=sa.Integer))
        lateral = ranked.lateral("ranked")
        return sa.select(counted.c.n, lateral).select_from(counted.outerjoin(lateral, sa.true()))

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
        threshold = self._threshold(limit)
        matching = _bounded_count(conn, table, list(filters), threshold + 1)
        path: SearchPath = "exact" if matching <= threshold else "index"
        return SearchPlan(
            path,
            matching,
            {} if path == "exact" else self._index_settings(limit),
            self.statement(path, table, filters, len(query), embeddings),
            self._params(query, limit),
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
        threshold = self._threshold(limit)
        params = self._params(query, limit)
        run = _Run(self, conn, table, list(filters), len(query), embeddings, params)
        if filters:
            counted = run("count_then")
            matching = int(counted[0].pop("n")) if counted else 0
            if matching <= threshold:
                return SearchOutcome(_scored(r for r in counted if r["id"] is not None), "exact")
        _apply(conn, self._index_settings(limit))
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
            placeholder = [sa.literal_column(_FILTERS, sa.Boolean)]
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
        lines = conn.execute(_Explain(plan.statement), plan.params).scalars().all()
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
        params = {name: self.params[name] for name in _PARAMS[kind]}
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
            cursor.execute(sql.replace(_FILTERS, fragment), {**params, **values})
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class UnrenderableFilter(Exception):
    """A filter that :func:`render_filters` does not know how to write."""


_COMPARISONS: dict[Any, str] = {
    operators.eq: "=",
    operators.ne: "<>",
    operators.lt: "<",
    operators.le: "<=",
    operators.gt: ">",
    operators.ge: ">=",
}
_IS: dict[Any, str] = {operators.is_: "IS", operators.is_not: "IS NOT"}
_CONSTANTS: dict[type[Any], str] = {Null: "NULL", True_: "true", False_: "false"}


def render_filters(
    filters: Sequence[sa.ColumnElement[bool]], dialect: sa.Dialect
) -> tuple[str, dict[str, Any]]:
    """Write ``filters`` (ANDed) as SQL text with named parameters, and those parameters.

    Knows what the stores filter searches with: a column compared with a value (``=``, ``<>``,
    ``<``, ``<=``, ``>``, ``>=``), ``IN`` a list of values (as ``= ANY``), ``IS [NOT]`` NULL,
    true or false, and AND/OR of those. Values go through the column type's bind processor,
    as SQLAlchemy would send them. Anything else raises :class:`UnrenderableFilter`.
    """
    params: dict[str, Any] = {}
    quote = dialect.identifier_preparer.quote

    def value(column: sa.Column[Any], raw: Any) -> str:
        processor = column.type._cached_bind_processor(dialect)
        name = f"hearth_f{len(params)}"
        params[name] = processor(raw) if processor is not None else raw
        return f"%({name})s"

    def render(clause: Any) -> str:
        if isinstance(clause, Grouping):
            return render(clause.element)
        if type(clause) in _CONSTANTS and not isinstance(clause, Null):
            return _CONSTANTS[type(clause)]
        if isinstance(clause, BooleanClauseList):
            joiner = {operators.and_: " AND ", operators.or_: " OR "}.get(clause.operator)
            if joiner is None or not clause.clauses:
                raise UnrenderableFilter(repr(clause))
            return "(" + joiner.join(render(c) for c in clause.clauses) + ")"
        if not isinstance(clause, BinaryExpression) or not isinstance(clause.left, sa.Column):
            raise UnrenderableFilter(repr(clause))
        column: sa.Column[Any] = clause.left
        if column.table is None:
            raise UnrenderableFilter(repr(clause))
        name = f"{quote(column.table.name)}.{quote(column.name)}"
        op, right = clause.operator, clause.right
        if op in _IS and type(right) in _CONSTANTS:
            return f"{name} {_IS[op]} {_CONSTANTS[type(right)]}"
        if isinstance(right, BindParameter) and right.effective_value is not None:
            raw = right.effective_value
            if op is operators.in_op and right.expanding:
                return f"{name} = ANY({value(column, list(raw))})"
            if op in _COMPARISONS and not right.expanding:
                return f"{name} {_COMPARISONS[op]} {value(column, raw)}"
        raise UnrenderableFilter(repr(clause))

    if not filters:
        return "true", params
    return "(" + " AND ".join(render(f) for f in filters) + ")", params


def _ranked(
    ids: sa.ColumnElement[Any],
    embeddings: sa.ColumnElement[Any],
    query: sa.BindParameter[Any],
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> sa.Select[Any]:
    """Ids and exact distances, best first, ``hearth_limit`` of them."""
    distance = embeddings.op("<=>", return_type=sa.Float)(query).label("distance")
    return (
        sa.select(ids.label("hit_id"), distance)
        .where(*where)
        .order_by(distance, ids)
        .limit(sa.bindparam(_LIMIT, type_=sa.Integer))
    )


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


def _with_rows(table: sa.Table, hits: sa.Select[Any], embeddings: bool) -> sa.Select[Any]:
    """Fetch whole rows only for the hits: ranking carries ids and distances, not vectors."""
    found = hits.subquery("hits")
    columns = selectable(table) if embeddings else [c for c in table.c if c.name != "embedding"]
    return (
        sa.select(*columns, found.c.distance)
        .join_from(found, table, table.c.id == found.c.hit_id)
        .order_by(found.c.distance, table.c.id)
    )


def _bounded_count(
    conn: sa.Connection, table: sa.Table, where: list[sa.ColumnElement[bool]], cap: int
) -> int:
    inner: sa.Select[Any] = (
        sa.select(sa.literal_column("1")).select_from(table).where(*where).limit(cap)
    )
    count = sa.select(sa.func.count()).select_from(inner.subquery())
    return int(conn.execute(count).scalar_one())


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

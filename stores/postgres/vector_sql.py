"""The SQL of a vector search: the statements of each kind, and their parameters.

A search runs up to three kinds of statement (:data:`StatementKind`): ``count_then`` counts
the filter's rows and, when they are few, ranks them exactly in the same round trip;
``exact`` ranks the filter's rows exactly; ``index`` takes candidates from the quantized
HNSW index and re-ranks them exactly. Every statement names its parameters ``hearth_*``
(:func:`search_params` gives their values), so that one compiled text serves every call.
Rankings carry ids and distances only; whole rows are joined to the hits afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa
from pgvector import Vector
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from stores.postgres.rows import VectorBytes, selectable
from stores.postgres.vector_index import Quantizer, VectorSearchPolicy

StatementKind = Literal["count_then", "exact", "index"]

FILTERS = "hearth_search_filters"
"""Stands for the caller's filters in a statement compiled once per table and kind."""

_Q, _LIMIT, _CANDIDATES, _THRESHOLD, _CAP = (
    "hearth_q",
    "hearth_limit",
    "hearth_candidates",
    "hearth_threshold",
    "hearth_cap",
)
PARAMS: dict[StatementKind, tuple[str, ...]] = {
    "count_then": (_Q, _LIMIT, _THRESHOLD, _CAP),
    "exact": (_Q, _LIMIT),
    "index": (_Q, _LIMIT, _CANDIDATES),
}
"""The parameters each kind of statement takes (a driver refuses unused ones)."""


def search_params(policy: VectorSearchPolicy, query: Sequence[float], limit: int) -> dict[str, Any]:
    """The values of every ``hearth_*`` parameter for a search of ``limit`` results."""
    threshold = policy.threshold_for(limit)
    return {
        _Q: Vector(list(query)),
        _LIMIT: limit,
        _CANDIDATES: policy.candidates_for(limit),
        _THRESHOLD: threshold,
        _CAP: threshold + 1,
    }


def statement(
    kind: StatementKind,
    table: sa.Table,
    filters: Sequence[sa.ColumnElement[bool]],
    dimensions: int,
    embeddings: bool,
    quantizer: Quantizer,
) -> sa.Select[Any]:
    """The statement of one kind of a search, with ``filters`` in place."""
    where = [table.c.embedding.is_not(None), *filters]
    query = sa.bindparam(_Q, type_=VectorBytes())
    if kind == "index":
        candidates = (
            sa.select(table.c.id, table.c.embedding)
            .where(*where)
            .order_by(quantizer.distance(table.c.embedding, query, dimensions))
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
    counted = _capped_count(table, filters, sa.bindparam(_CAP, type_=sa.Integer)).subquery()
    ranked = exact.where(counted.c.n <= sa.bindparam(_THRESHOLD, type_=sa.Integer))
    lateral = ranked.lateral("ranked")
    return sa.select(counted.c.n, lateral).select_from(counted.outerjoin(lateral, sa.true()))


def bounded_count(
    conn: sa.Connection, table: sa.Table, where: Sequence[sa.ColumnElement[bool]], cap: int
) -> int:
    """How many rows of ``table`` match ``where``, counted up to ``cap``."""
    return int(conn.execute(_capped_count(table, where, cap)).scalar_one())


def _capped_count(
    table: sa.Table, where: Sequence[sa.ColumnElement[bool]], cap: int | sa.BindParameter[int]
) -> sa.Select[Any]:
    """The count ``n`` of ``table``'s rows matching ``where``, stopping at ``cap``."""
    limited: sa.Select[Any] = (
        sa.select(sa.literal_column("1")).select_from(table).where(*where).limit(cap)
    )
    return sa.select(sa.func.count().label("n")).select_from(limited.subquery())


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


def _with_rows(table: sa.Table, hits: sa.Select[Any], embeddings: bool) -> sa.Select[Any]:
    """Fetch whole rows only for the hits: ranking carries ids and distances, not vectors."""
    found = hits.subquery("hits")
    columns = selectable(table) if embeddings else [c for c in table.c if c.name != "embedding"]
    return (
        sa.select(*columns, found.c.distance)
        .join_from(found, table, table.c.id == found.c.hit_id)
        .order_by(found.c.distance, table.c.id)
    )


class Explain(Executable, ClauseElement):
    """``EXPLAIN (COSTS OFF)`` of a statement, run with the statement's parameters."""

    inherit_cache = False

    def __init__(self, statement: sa.Select[Any]) -> None:
        self.statement = statement


@compiles(Explain)
def _compile_explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (COSTS OFF) " + str(compiler.process(element.statement, **kw))

"""Filtered vector search on PostgreSQL: complete, accurate, and on the intended plan.

One database holds a few thousand 1536-dimension episode vectors made the way text
embeddings look (a low-dimensional latent through a fixed linear map, plus noise). Customer
filters keep 10 %, 1 % and 0.1 % of the rows; the agent filter keeps all of them. Every
search is compared with an exact ranking computed in numpy, and repeated more than
psycopg's prepare threshold so that a reused server-side plan would show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector.psycopg import register_vector

from stores.common.clock import ManualClock
from stores.memory import Episode, PostgresMemoryStore
from stores.postgres import schema
from stores.postgres.engine import create_engine
from stores.postgres.vector_filters import UnrenderableFilter, render_filters
from stores.postgres.vectors import VectorSearcher, VectorSearchPolicy
from tests import services

pytestmark = pytest.mark.postgres

DIMS = 1536
ROWS = 3000
QUERIES = 12
LIMIT = 10
# Small enough that the agent-wide and the 10 % filters take the index path on this data.
POLICY = VectorSearchPolicy(exact_max_rows=60)


@dataclass
class Corpus:
    engine: sa.Engine
    tenant: UUID
    agent: UUID
    ids: np.ndarray[Any, Any]
    vectors: np.ndarray[Any, Any]
    customers: dict[str, UUID]
    customer_of: np.ndarray[Any, Any]
    latent_map: np.ndarray[Any, Any]


def realistic(rng: np.random.Generator, n: int, latent_map: np.ndarray[Any, Any]) -> Any:
    latent = rng.standard_normal((n, latent_map.shape[0]))
    out = latent @ latent_map + 0.05 * rng.standard_normal((n, latent_map.shape[1]))
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def corpus(pg_server: str, pg_template: str) -> Iterator[Corpus]:
    name = services.unique_name("hearth_vec")
    url = services.create_database(pg_server, name, template=pg_template)
    engine = create_engine(url)
    rng = np.random.default_rng(7)
    latent_map = rng.standard_normal((32, DIMS)) / np.sqrt(32)
    vectors = realistic(rng, ROWS, latent_map)
    tenant, agent = uuid4(), uuid4()
    customers = {"10%": uuid4(), "1%": uuid4(), "0.1%": uuid4(), "rest": uuid4()}
    share = {"10%": ROWS // 10, "1%": ROWS // 100, "0.1%": ROWS // 1000}
    customer_of = np.array([customers["rest"]] * ROWS, dtype=object)
    order = rng.permutation(ROWS)
    start = 0
    for key, count in share.items():
        customer_of[order[start : start + count]] = customers[key]
        start += count
    ids = np.array([uuid4() for _ in range(ROWS)], dtype=object)
    hnsw = next(
        i for i in schema.episodes.indexes if i.name == schema.vector_index_name("episodes")
    )
    with engine.begin() as conn:
        # Building the index once after loading is much faster than growing it row by row.
        hnsw.drop(conn)
        raw = conn.connection.driver_connection
        assert raw is not None
        register_vector(raw)
        with raw.cursor().copy(
            "COPY episodes (id, tenant_id, agent_id, customer_profile_id, content, embedding) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "uuid", "uuid", "uuid", "text", "vector"])
            for i in range(ROWS):
                copy.write_row((ids[i], tenant, agent, customer_of[i], f"doc {i}", vectors[i]))
        hnsw.create(conn)
        conn.execute(sa.text("ANALYZE episodes"))
    try:
        yield Corpus(engine, tenant, agent, ids, vectors, customers, customer_of, latent_map)
    finally:
        engine.dispose()
        services.drop_database(pg_server, name)


@pytest.fixture
def store(corpus: Corpus) -> PostgresMemoryStore:
    return PostgresMemoryStore(corpus.engine, clock=ManualClock(), search_policy=POLICY)


def exact_top(
    corpus: Corpus, query: np.ndarray[Any, Any], mask: np.ndarray[Any, Any], k: int
) -> list[UUID]:
    vectors = corpus.vectors[mask]
    sims = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    best = np.argsort(-sims)[:k]
    return list(corpus.ids[mask][best])


SELECTIVITY = ["100%", "10%", "1%", "0.1%"]


@pytest.mark.parametrize("selectivity", SELECTIVITY)
def test_filtered_search_is_complete_and_accurate(
    store: PostgresMemoryStore, corpus: Corpus, selectivity: str
) -> None:
    rng = np.random.default_rng(11)
    if selectivity == "100%":
        mask = np.ones(ROWS, dtype=bool)
        filters: dict[str, Any] = {}
    else:
        customer = corpus.customers[selectivity]
        mask = corpus.customer_of == customer
        filters = {"customer_profile_id": customer}
    expected_len = min(LIMIT, int(mask.sum()))
    hits = total = 0
    for query in realistic(rng, QUERIES, corpus.latent_map):
        results = store.vector_search_episodes(
            corpus.tenant, corpus.agent, query.tolist(), limit=LIMIT, **filters
        )
        assert len(results) == expected_len
        scores = [s for _, s in results]
        assert scores == sorted(scores, reverse=True)
        truth = exact_top(corpus, query, mask, LIMIT)
        hits += len({e.id for e, _ in results} & set(truth))
        total += len(truth)
        if filters:
            assert all(e.customer_profile_id == filters["customer_profile_id"] for e, _ in results)
    assert hits / total >= 0.98


def test_each_filter_takes_its_intended_plan(store: PostgresMemoryStore, corpus: Corpus) -> None:
    query = realistic(np.random.default_rng(3), 1, corpus.latent_map)[0].tolist()
    expected = {"100%": "index", "10%": "index", "1%": "exact", "0.1%": "exact"}
    for selectivity, path in expected.items():
        where = [
            schema.episodes.c.tenant_id == corpus.tenant,
            schema.episodes.c.agent_id == corpus.agent,
        ]
        if selectivity != "100%":
            where.append(schema.episodes.c.customer_profile_id == corpus.customers[selectivity])
        with corpus.engine.begin() as conn:
            plan, explain = store.searcher.explain(conn, schema.episodes, where, query, LIMIT)
        assert plan.path == path, selectivity
        uses_hnsw = schema.vector_index_name("episodes") in explain
        assert uses_hnsw == (path != "exact"), explain


def test_min_score_and_limit_on_the_index_path(store: PostgresMemoryStore, corpus: Corpus) -> None:
    query = realistic(np.random.default_rng(5), 1, corpus.latent_map)[0].tolist()
    full = store.vector_search_episodes(corpus.tenant, corpus.agent, query, limit=50)
    assert len(full) == 50
    cut = full[20][1]
    kept = store.vector_search_episodes(corpus.tenant, corpus.agent, query, limit=50, min_score=cut)
    assert [e.id for e, _ in kept] == [e.id for e, s in full if s >= cut]
    assert store.vector_search_episodes(corpus.tenant, uuid4(), query) == []


def test_too_few_index_results_fall_back_to_exact(corpus: Corpus) -> None:
    # The filter matches more rows than the exact threshold, but few of them have an
    # embedding: the index path finds fewer than asked, and the search is repeated exactly.
    store = PostgresMemoryStore(
        corpus.engine, clock=ManualClock(), search_policy=VectorSearchPolicy(exact_max_rows=10)
    )
    agent = uuid4()
    embedded = [
        store.add_episode(
            Episode(
                tenant_id=corpus.tenant,
                agent_id=agent,
                content=f"e{i}",
                embedding=corpus.vectors[i].tolist(),
            )
        )
        for i in range(3)
    ]
    for i in range(20):
        store.add_episode(Episode(tenant_id=corpus.tenant, agent_id=agent, content=f"n{i}"))
    query = corpus.vectors[0].tolist()
    where = [schema.episodes.c.tenant_id == corpus.tenant, schema.episodes.c.agent_id == agent]
    with corpus.engine.begin() as conn:
        outcome = store.searcher.search(conn, schema.episodes, where, query, 10)
    assert outcome.path == "index"
    assert outcome.fell_back
    found = [r["id"] for r, _ in outcome.rows]
    assert sorted(found) == sorted(e.id for e in embedded)
    assert found[0] == embedded[0].id
    scores = [score for _, score in outcome.rows]
    assert scores == sorted(scores, reverse=True)


def test_index_candidates_are_reranked_on_the_full_vectors(corpus: Corpus) -> None:
    """The scores are the full-precision cosine similarities, not the half-precision ones."""
    searcher = VectorSearcher(VectorSearchPolicy(exact_max_rows=0))
    query = realistic(np.random.default_rng(13), 1, corpus.latent_map)[0]
    where = [schema.episodes.c.tenant_id == corpus.tenant]
    with corpus.engine.begin() as conn:
        outcome = searcher.search(conn, schema.episodes, where, query.tolist(), 10)
    assert outcome.path == "index"
    assert not outcome.fell_back
    by_id = dict(zip(corpus.ids, corpus.vectors, strict=True))
    for row, score in outcome.rows:
        vector = by_id[row["id"]].astype(np.float64)
        exact = float(vector @ query / (np.linalg.norm(vector) * np.linalg.norm(query)))
        assert score == pytest.approx(exact, abs=1e-6)
        assert "embedding" not in row


def test_search_hides_rows_without_embedding(store: PostgresMemoryStore, corpus: Corpus) -> None:
    customer = uuid4()
    with_vec = store.add_episode(
        Episode(
            tenant_id=corpus.tenant,
            agent_id=corpus.agent,
            content="x",
            customer_profile_id=customer,
            embedding=corpus.vectors[0].tolist(),
        )
    )
    store.add_episode(
        Episode(
            tenant_id=corpus.tenant,
            agent_id=corpus.agent,
            content="y",
            customer_profile_id=customer,
        )
    )
    found = store.vector_search_episodes(
        corpus.tenant, corpus.agent, corpus.vectors[0].tolist(), customer_profile_id=customer
    )
    assert [e.id for e, _ in found] == [with_vec.id]
    assert found[0][1] == pytest.approx(1.0, abs=1e-5)


def test_driver_errors_outside_sqlalchemy_are_translated(pg_server: str) -> None:
    """The pgvector type lookup talks to psycopg directly; its errors are store errors too."""
    import psycopg

    from stores.errors import StoreError

    name = services.unique_name("hearth_bare")
    url = services.create_database(pg_server, name)
    store = PostgresMemoryStore.from_url(url, dimensions=3)
    try:
        with pytest.raises(StoreError) as caught:
            store.vector_search_episodes(uuid4(), uuid4(), [1.0, 0.0, 0.0])
        assert not isinstance(caught.value, psycopg.Error)
        assert isinstance(caught.value.__cause__, psycopg.Error)
    finally:
        store.close()
        services.drop_database(pg_server, name)


@pytest.mark.parametrize("exact_max_rows", [0, 5000], ids=["index path", "exact path"])
def test_filters_the_renderer_cannot_write_run_through_sqlalchemy_alike(
    corpus: Corpus, exact_max_rows: int
) -> None:
    """A filter of another shape takes the composed statement and finds the same rows."""
    searcher = VectorSearcher(VectorSearchPolicy(exact_max_rows=exact_max_rows))
    ep = schema.episodes
    customer = corpus.customers["10%"]
    rendered = [ep.c.tenant_id == corpus.tenant, ep.c.customer_profile_id == customer]
    # A function call on the column is not among the shapes the renderer writes.
    composed = [
        ep.c.tenant_id == corpus.tenant,
        sa.func.lower(sa.cast(ep.c.customer_profile_id, sa.Text)) == str(customer).lower(),
    ]
    with corpus.engine.connect() as conn:
        render_filters(rendered, conn.dialect)
        with pytest.raises(UnrenderableFilter):
            render_filters(composed, conn.dialect)
    query = realistic(np.random.default_rng(17), 1, corpus.latent_map)[0].tolist()
    found = {}
    for label, where in (("rendered", rendered), ("composed", composed)):
        with corpus.engine.begin() as conn:
            outcome = searcher.search(conn, ep, where, query, LIMIT)
        found[label] = [(row["id"], round(score, 6)) for row, score in outcome.rows]
    assert len(found["rendered"]) == LIMIT
    assert found["rendered"] == found["composed"]


def test_rendered_filters_select_what_sqlalchemy_selects(corpus: Corpus) -> None:
    """Every shape the renderer writes, against the same filter compiled by SQLAlchemy."""
    ep = schema.episodes
    when = datetime(2100, 1, 1, tzinfo=UTC)
    shapes: list[list[sa.ColumnElement[bool]]] = [
        [ep.c.tenant_id == corpus.tenant, ep.c.agent_id != uuid4()],
        [ep.c.episode_type.in_(["TURN", "FACT"]), ep.c.session_id.is_(None)],
        [ep.c.customer_profile_id.in_([corpus.customers["1%"], corpus.customers["0.1%"]])],
        [sa.and_(ep.c.valid_from <= when, sa.or_(ep.c.valid_to.is_(None), ep.c.valid_to > when))],
        [ep.c.valid_from < when, ep.c.valid_from >= when.replace(year=2000)],
        [sa.false()],
        [sa.true(), ep.c.embedding.is_not(None)],
    ]
    with corpus.engine.connect() as conn:
        for shape in shapes:
            fragment, params = render_filters(shape, conn.dialect)
            driver = conn.connection.driver_connection
            assert driver is not None
            with driver.cursor() as cursor:
                cursor.execute(f"SELECT id FROM episodes WHERE {fragment}", params)
                rendered = sorted(row[0] for row in cursor.fetchall())
            composed = sorted(conn.execute(sa.select(ep.c.id).where(*shape)).scalars())
            assert rendered == composed, fragment

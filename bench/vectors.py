"""Filtered vector search: hearth's search next to exact search in the same database.

For each data set (``realistic``: 1536-dim vectors from a 32-dim latent through a fixed random
linear map plus small noise; ``hard``: noisy, nearly isotropic clusters) and each table size,
rows are spread over many tenants so that one tenant filter keeps 10 %, 1 % or 0.1 % of the
table; "100 %" searches the whole table (a single-tenant deployment). Queries are fresh draws,
not stored rows. For each selectivity it prints one JSON object: hearth's p50/p99 latency,
recall@10 against exact search, completeness, and the exact search's own p50/p99, measured
side by side. Exact search runs with index scans off and statements never prepared.

    python bench/vectors.py                      # 10k and 100k rows, both data sets
    python bench/vectors.py --rows 2000 --queries 20 --datasets realistic   # quick look

With ``--database-url`` the given server is used (a scratch database is created and dropped);
otherwise an embedded PostgreSQL (pgserver) is started in a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stores.memory import PostgresMemoryStore
from stores.postgres import schema
from stores.postgres.engine import create_engine, normalize_url
from stores.postgres.rows import register_vector_types, vector_param
from stores.postgres.vectors import VectorSearcher, VectorSearchPolicy

DIMS = 1536
LATENT = 32
SMALL_TENANTS = 200
SELECTIVITIES = {"100%": None, "10%": 0.10, "1%": 0.01, "0.1%": 0.001}
EP = schema.episodes


def make_data(kind: str, n: int, rng: np.random.Generator, basis: Any) -> Any:
    """``n`` vectors of the ``kind`` data set (``basis`` fixes the set's shared structure)."""
    if kind == "realistic":
        latent = rng.standard_normal((n, LATENT))
        out = latent @ basis + 0.05 * rng.standard_normal((n, DIMS))
    else:
        centers = basis
        pick = rng.integers(0, len(centers), n)
        out = 0.6 * centers[pick] + rng.standard_normal((n, DIMS))
    return out.astype(np.float32)


def make_basis(kind: str, rng: np.random.Generator) -> Any:
    if kind == "realistic":
        return rng.standard_normal((LATENT, DIMS)) / np.sqrt(LATENT)
    return rng.standard_normal((100, DIMS))


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from workers.embedded import start_postgres

    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as tmp:
        pg = start_postgres(Path(tmp), keep=False, tune=True)
        try:
            yield pg.url
        finally:
            pg.stop()


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    from sqlalchemy.engine import make_url

    from workers.migrations import upgrade

    name = f"hearth_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        normalize_url(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(server_url)).set(database=name).render_as_string(False)
    try:
        upgrade(url, "head", dimensions=DIMS)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load(engine: sa.Engine, vectors: Any, rng: np.random.Generator) -> dict[str, Any]:
    """Insert the rows over many tenants; return the tenant of each selectivity."""
    n = len(vectors)
    agent = uuid.uuid4()
    tenants = {key: uuid.uuid4() for key, share in SELECTIVITIES.items() if share}
    small = [uuid.uuid4() for _ in range(SMALL_TENANTS)]
    owner = np.array([small[i % SMALL_TENANTS] for i in range(n)], dtype=object)
    order = rng.permutation(n)
    start = 0
    for key, tenant in tenants.items():
        count = max(1, round(n * (SELECTIVITIES[key] or 0)))
        owner[order[start : start + count]] = tenant
        start += count
    hnsw = next(i for i in EP.indexes if i.name == "ix_episodes_embedding_hnsw")
    started = time.perf_counter()
    with engine.begin() as conn:
        hnsw.drop(conn)
        raw = conn.connection.driver_connection
        register_vector(raw)
        with raw.cursor().copy(
            "COPY episodes (id, tenant_id, agent_id, content, embedding) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "uuid", "uuid", "text", "vector"])
            for i in range(n):
                copy.write_row((uuid.uuid4(), owner[i], agent, f"row {i}", vectors[i]))
    loaded = time.perf_counter()
    with engine.begin() as conn:
        # An HNSW build that does not fit in maintenance_work_mem slows down many times.
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '2GB'"))
        conn.execute(sa.text("SET LOCAL max_parallel_maintenance_workers = 2"))
        hnsw.create(conn)
    indexed = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE episodes"))
    counts = {key: int((owner == t).sum()) for key, t in tenants.items()}
    return {
        "agent": agent,
        "tenants": tenants,
        "counts": counts,
        "load_s": round(loaded - started, 2),
        "index_s": round(indexed - loaded, 2),
    }


def exact_search(conn: sa.Connection, where: list[Any], query: list[float], k: int) -> list[Any]:
    """Ground truth: an exact ranking with index scans off (B-tree bitmap scans still allowed)."""
    register_vector_types(conn)
    conn.execute(sa.text("SET LOCAL enable_indexscan = off"))
    distance = EP.c.embedding.op("<=>", return_type=sa.Float)(vector_param(query))
    stmt = sa.select(EP.c.id).where(EP.c.embedding.is_not(None), *where).order_by(distance).limit(k)
    return list(conn.execute(stmt).scalars())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(args: argparse.Namespace, kind: str, rows: int, server_url: str) -> None:
    rng = np.random.default_rng(1234 + rows)
    basis = make_basis(kind, rng)
    vectors = make_data(kind, rows, rng, basis)
    queries = make_data(kind, args.queries + args.warmup, rng, basis)
    with scratch_database(server_url) as url:
        # psycopg must never reuse a server-side plan: both sides follow their arguments.
        engine = create_engine(url, pool_size=2, connect_args={"prepare_threshold": None})
        facts = load(engine, vectors, rng)
        policy = VectorSearchPolicy(**({"ef_search": args.ef_search} if args.ef_search else {}))
        store = PostgresMemoryStore(engine, dimensions=DIMS, search_policy=policy)
        searcher = VectorSearcher(policy)
        with engine.connect() as conn:
            version = searcher.pgvector_version(conn)
        for label, _share in SELECTIVITIES.items():
            tenant = facts["tenants"].get(label)
            where = (
                []
                if tenant is None
                else [EP.c.tenant_id == tenant, EP.c.agent_id == facts["agent"]]
            )
            matching = rows if tenant is None else facts["counts"][label]
            hearth_ms: list[float] = []
            exact_ms: list[float] = []
            recalls: list[float] = []
            complete = 0
            paths: dict[str, int] = {}
            for i, q in enumerate(queries):
                query = q.tolist()
                t0 = time.perf_counter()
                if tenant is None:
                    with engine.begin() as conn:
                        outcome = searcher.search(conn, EP, where, query, args.limit)
                    found = [r["id"] for r, _ in outcome.rows]
                    path = outcome.path + ("+fallback" if outcome.fell_back else "")
                else:
                    results = store.vector_search_episodes(
                        tenant, facts["agent"], query, limit=args.limit
                    )
                    found = [e.id for e, _ in results]
                    path = "store"
                t1 = time.perf_counter()
                with engine.begin() as conn:
                    truth = exact_search(conn, where, query, args.limit)
                t2 = time.perf_counter()
                if i < args.warmup:
                    continue
                hearth_ms.append((t1 - t0) * 1000)
                exact_ms.append((t2 - t1) * 1000)
                recalls.append(len(set(found) & set(truth)) / max(1, len(truth)))
                complete += len(found) == min(args.limit, matching)
                paths[path] = paths.get(path, 0) + 1
            if tenant is not None:
                with engine.begin() as conn:
                    plan = searcher.plan(conn, EP, where, queries[0].tolist(), args.limit)
                paths = {plan.path: len(recalls)}
            result = {
                "bench": "vector_search",
                "dataset": kind,
                "rows": rows,
                "selectivity": label,
                "matching_rows": matching,
                "limit": args.limit,
                "queries": len(recalls),
                "pgvector": ".".join(map(str, version)),
                "path": paths,
                "hearth_p50_ms": round(statistics.median(hearth_ms), 2),
                "hearth_p99_ms": round(percentile(hearth_ms, 0.99), 2),
                "recall_at_10": round(statistics.mean(recalls), 4),
                "complete": round(complete / len(recalls), 4),
                "exact_p50_ms": round(statistics.median(exact_ms), 2),
                "exact_p99_ms": round(percentile(exact_ms, 0.99), 2),
                "p50_ratio_vs_exact": round(
                    statistics.median(hearth_ms) / statistics.median(exact_ms), 3
                ),
                "targets_met": {
                    "p99_le_10ms": percentile(hearth_ms, 0.99) <= 10.0,
                    "recall_ge_0_98": statistics.mean(recalls) >= 0.98,
                    "complete": complete == len(recalls),
                },
                "load_s": facts["load_s"],
                "index_build_s": facts["index_s"],
            }
            print(json.dumps(result), flush=True)
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", default="10000,100000", help="comma-separated table sizes (default 10000,100000)"
    )
    parser.add_argument(
        "--datasets", default="realistic,hard", help="comma-separated: realistic, hard"
    )
    parser.add_argument("--queries", type=int, default=100, help="measured queries per filter")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured queries first")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument(
        "--ef-search", type=int, default=None, help="override the policy's base hnsw.ef_search"
    )
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL server with pgvector (default: embedded)"
    )
    args = parser.parse_args()
    with server(args.database_url) as server_url:
        for kind in args.datasets.split(","):
            for rows in (int(r) for r in args.rows.split(",")):
                measure(args, kind, rows, server_url)


if __name__ == "__main__":
    main()

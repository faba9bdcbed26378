"""Filtered vector search: hearth's search next to exact search in the same database.

For each data set (``realistic``: 1536-dim vectors from a 32-dim latent through a fixed random
linear map plus small noise; ``hard``: noisy, nearly isotropic clusters) and each table size,
rows are spread over many tenants so that one tenant filter keeps 10 %, 1 % or 0.1 % of the
table, and one large tenant holds half of it; "100 %" searches the whole table (a
single-tenant deployment). Inside the large tenant, filters keep one agent (a tenth of the
tenant), one episode type (a quarter) and the episodes valid at a time (about half). Queries
are fresh draws, not stored rows.

For each case it prints one JSON object: hearth's p50/p99 latency over ``--queries`` searches,
recall@10 and completeness against exact search over the first ``--exact-queries`` of them,
the exact search's own p50/p99 (index scans off, statements never prepared), and which targets
are met. Before the cases, one object reports the embedding index's build time and bytes per
row next to a plain full-vector HNSW index built on the same rows.

    python bench/vectors.py                      # 100k rows, both data sets
    python bench/vectors.py --rows 2000 --queries 50 --exact-queries 20 --datasets realistic

With ``--database-url`` the given server is used (a scratch database is created and dropped);
otherwise an embedded PostgreSQL is started in a temporary directory.
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
from datetime import UTC, datetime, timedelta
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
from stores.postgres.tenant_indexes import TenantIndexPolicy, apply_changes
from stores.postgres.vectors import VectorSearcher

DIMS = 1536
LATENT = 32
SMALL_TENANTS = 200
SELECTIVITIES = {"100%": None, "10%": 0.10, "1%": 0.01, "0.1%": 0.001}
LARGE_SHARE = 0.5
"""The share of the table the large tenant holds."""
LARGE_AGENT_SHARE = 0.1
"""The share of the large tenant's rows its second agent holds."""
EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
EP = schema.episodes
LOADED_AT = "0008"
"""The rows are loaded at this revision, so that the migration after it builds the quantized
index on a table that holds them (and its time is the build time reported)."""
PRE_QUANTIZED_INDEX = "ix_episodes_embedding_hnsw"


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
def scratch_database(server_url: str, revision: str = "head") -> Iterator[str]:
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
        upgrade(url, revision, dimensions=DIMS)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load(
    engine: sa.Engine, url: str, vectors: Any, rng: np.random.Generator, plain: bool
) -> dict[str, Any]:
    """Insert the rows over many tenants at the revision before the quantized indexes, then
    migrate to head (which builds them on the loaded table); return who owns which, and the
    index build facts."""
    n = len(vectors)
    agent, large_tenant, large_agent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    tenants = {key: uuid.uuid4() for key, share in SELECTIVITIES.items() if share}
    small = [uuid.uuid4() for _ in range(SMALL_TENANTS)]
    owner = np.array([small[i % SMALL_TENANTS] for i in range(n)], dtype=object)
    agents = np.array([agent] * n, dtype=object)
    order = rng.permutation(n)
    start = 0
    for key, tenant in tenants.items():
        count = max(1, round(n * (SELECTIVITIES[key] or 0)))
        owner[order[start : start + count]] = tenant
        start += count
    large_rows = order[start : start + round(n * LARGE_SHARE)]
    owner[large_rows] = large_tenant
    agents[large_rows[: round(len(large_rows) * LARGE_AGENT_SHARE)]] = large_agent
    types = np.array(schema.EPISODE_TYPES, dtype=object)[rng.integers(0, 4, n)]
    # Valid from some day of the year; half of the episodes end before the year is out.
    valid_from = [EPOCH + timedelta(days=int(d)) for d in rng.integers(0, 365, n)]
    valid_to = [
        f + timedelta(days=int(d)) if rng.random() < 0.5 else None
        for f, d in zip(valid_from, rng.integers(1, 60, n), strict=True)
    ]
    started = time.perf_counter()
    with engine.begin() as conn:
        # Loading is much faster without an index; the migration builds hearth's afterwards.
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {PRE_QUANTIZED_INDEX}"))
        raw = conn.connection.driver_connection
        register_vector(raw)
        with raw.cursor().copy(
            "COPY episodes (id, tenant_id, agent_id, content, embedding, episode_type, "
            "valid_from, valid_to) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                ["uuid", "uuid", "uuid", "text", "vector", "text", "timestamptz", "timestamptz"]
            )
            for i in range(n):
                copy.write_row(
                    (
                        uuid.uuid4(),
                        owner[i],
                        agents[i],
                        f"row {i}",
                        vectors[i],
                        types[i],
                        valid_from[i],
                        valid_to[i],
                    )
                )
    loaded = time.perf_counter()
    facts: dict[str, Any] = {"load_s": round(loaded - started, 2)}
    if plain:
        ddl = (
            "CREATE INDEX bench_plain_hnsw ON episodes USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        facts["plain_hnsw"] = build_index(engine, sa.text(ddl), "bench_plain_hnsw", n)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX bench_plain_hnsw"))
    facts["hearth_index"] = migrate_to_head(engine, url, n)
    facts["tenant_indexes"] = tenant_indexes(engine, n)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE episodes"))
    facts.update(
        agent=agent,
        tenants=tenants,
        counts={key: int((owner == t).sum()) for key, t in tenants.items()},
        large_tenant=large_tenant,
        large_agent=large_agent,
        large={
            "agent": int(((owner == large_tenant) & (agents == large_agent)).sum()),
            "type": int(((owner == large_tenant) & (agents == agent) & (types == "FACT")).sum()),
            "valid_at": sum(
                1
                for i in np.flatnonzero((owner == large_tenant) & (agents == agent))
                if valid_from[i] <= VALID_AT and (valid_to[i] is None or valid_to[i] > VALID_AT)
            ),
        },
    )
    return facts


VALID_AT = EPOCH + timedelta(days=200)


def tenant_indexes(engine: sa.Engine, rows: int) -> list[dict[str, Any]]:
    """What the hourly ``tenant-vector-indexes`` job makes for the loaded table (the large
    tenant's own index): each index's build time and size per indexed row."""
    started = time.perf_counter()
    changes = apply_changes(engine, TenantIndexPolicy()) or []
    seconds = time.perf_counter() - started
    built = []
    with engine.connect() as conn:
        for change in changes:
            size = conn.execute(sa.text(f"SELECT pg_relation_size('{change.index}')")).scalar()
            built.append(
                {
                    "name": change.index,
                    "rows": change.rows,
                    "build_s": round(seconds / max(len(changes), 1), 1),
                    "bytes_per_row": round(int(size or 0) / max(change.rows, 1)),
                }
            )
    return built


def migrate_to_head(engine: sa.Engine, url: str, rows: int) -> dict[str, Any]:
    """Run the migrations from the loaded revision to head; their time and the index size.

    The migration's connection gets the budget an operator would give an index build (an HNSW
    build that does not fit in maintenance_work_mem slows down many times).
    """
    from sqlalchemy.engine import make_url

    from workers.migrations import upgrade

    budget = "-c maintenance_work_mem=2GB -c max_parallel_maintenance_workers=2"
    with_budget = make_url(url).update_query_dict({"options": budget}).render_as_string(False)
    started = time.perf_counter()
    upgrade(with_budget, "head", dimensions=DIMS)
    name = schema.vector_index_name("episodes")
    with engine.connect() as conn:
        size = conn.execute(sa.text("SELECT pg_relation_size(CAST(:n AS regclass))"), {"n": name})
        size_bytes = int(size.scalar_one())
    return {
        "name": name,
        "built_by": f"migration {LOADED_AT} -> head",
        "build_s": round(time.perf_counter() - started, 1),
        "bytes_per_row": round(size_bytes / max(1, rows)),
    }


def build_index(engine: sa.Engine, ddl: sa.TextClause, name: str, rows: int) -> dict[str, Any]:
    """Build one index; its build time and size per row."""
    started = time.perf_counter()
    with engine.begin() as conn:
        # An HNSW build that does not fit in maintenance_work_mem slows down many times.
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '2GB'"))
        conn.execute(sa.text("SET LOCAL max_parallel_maintenance_workers = 2"))
        conn.execute(ddl)
        size = conn.execute(sa.text("SELECT pg_relation_size(CAST(:n AS regclass))"), {"n": name})
        size_bytes = int(size.scalar_one())
    return {
        "name": name,
        "build_s": round(time.perf_counter() - started, 1),
        "bytes_per_row": round(size_bytes / max(1, rows)),
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


def cases(facts: dict[str, Any], rows: int) -> list[tuple[str, dict[str, Any] | None, int]]:
    """(label, the store's search arguments or None for a table-wide search, matching rows)."""
    agent = facts["agent"]
    out: list[tuple[str, dict[str, Any] | None, int]] = [("100%", None, rows)]
    for label, tenant in facts["tenants"].items():
        out.append((label, {"tenant_id": tenant, "agent_id": agent}, facts["counts"][label]))
    large = facts["large_tenant"]
    out += [
        (
            "large tenant: one agent",
            {"tenant_id": large, "agent_id": facts["large_agent"]},
            facts["large"]["agent"],
        ),
        (
            "large tenant: one episode type",
            {"tenant_id": large, "agent_id": agent, "episode_types": ["FACT"]},
            facts["large"]["type"],
        ),
        (
            "large tenant: valid at a time",
            {"tenant_id": large, "agent_id": agent, "valid_at": VALID_AT},
            facts["large"]["valid_at"],
        ),
    ]
    return out


def exact_where(arguments: dict[str, Any] | None) -> list[Any]:
    """The anchor's WHERE clause for the same filter as the store's search."""
    if arguments is None:
        return []
    where = [EP.c.tenant_id == arguments["tenant_id"], EP.c.agent_id == arguments["agent_id"]]
    if "episode_types" in arguments:
        where.append(EP.c.episode_type.in_(arguments["episode_types"]))
    if "valid_at" in arguments:
        when = arguments["valid_at"]
        where += [EP.c.valid_from <= when, sa.or_(EP.c.valid_to.is_(None), EP.c.valid_to > when)]
    return where


def measure(args: argparse.Namespace, kind: str, rows: int, server_url: str) -> None:
    rng = np.random.default_rng(1234 + rows)
    basis = make_basis(kind, rng)
    vectors = make_data(kind, rows, rng, basis)
    queries = make_data(kind, args.queries + args.warmup, rng, basis)
    p99_target = 10.0 if kind == "realistic" else 20.0
    with scratch_database(server_url, LOADED_AT) as url:
        # psycopg must never reuse a server-side plan: both sides follow their arguments.
        engine = create_engine(url, pool_size=2, connect_args={"prepare_threshold": None})
        facts = load(engine, url, vectors, rng, plain=not args.no_plain)
        searcher = VectorSearcher()
        store = PostgresMemoryStore(engine, dimensions=DIMS)
        with engine.connect() as conn:
            version = searcher.pgvector_version(conn)
            server_version = conn.execute(sa.text("SHOW server_version")).scalar()
            # The figures depend on whether the index and the vectors fit in the buffers.
            shared_buffers = conn.execute(sa.text("SHOW shared_buffers")).scalar()
        print(
            json.dumps(
                {
                    "bench": "vector_index",
                    "dataset": kind,
                    "rows": rows,
                    "postgres": server_version,
                    "pgvector": ".".join(map(str, version)),
                    "shared_buffers": shared_buffers,
                    "load_s": facts["load_s"],
                    "hearth_index": facts["hearth_index"],
                    "tenant_indexes": facts["tenant_indexes"],
                    "plain_hnsw": facts.get("plain_hnsw"),
                }
            ),
            flush=True,
        )
        for label, arguments, matching in cases(facts, rows):
            where = exact_where(arguments)
            hearth_ms: list[float] = []
            exact_ms: list[float] = []
            recalls: list[float] = []
            complete = 0
            paths: dict[str, int] = {}
            for i, q in enumerate(queries):
                query = q.tolist()
                t0 = time.perf_counter()
                if arguments is None:
                    with engine.begin() as conn:
                        outcome = searcher.search(conn, EP, where, query, args.limit)
                    found = [r["id"] for r, _ in outcome.rows]
                    path = outcome.path + ("+fallback" if outcome.fell_back else "")
                    paths[path] = paths.get(path, 0) + 1
                else:
                    results = store.vector_search_episodes(
                        embedding=query, limit=args.limit, **arguments
                    )
                    found = [e.id for e, _ in results]
                t1 = time.perf_counter()
                if i < args.warmup:
                    continue
                hearth_ms.append((t1 - t0) * 1000)
                complete += len(found) == min(args.limit, matching)
                if i - args.warmup < args.exact_queries:
                    with engine.begin() as conn:
                        truth = exact_search(conn, where, query, args.limit)
                    exact_ms.append((time.perf_counter() - t1) * 1000)
                    recalls.append(len(set(found) & set(truth)) / max(1, len(truth)))
            if arguments is not None:
                with engine.begin() as conn:
                    plan = searcher.plan(conn, EP, where, queries[0].tolist(), args.limit)
                paths = {plan.path: len(hearth_ms)}
            p99 = percentile(hearth_ms, 0.99)
            ratio = statistics.median(hearth_ms) / statistics.median(exact_ms)
            targets = {
                f"p99_le_{p99_target:g}ms": p99 <= p99_target,
                "recall_ge_0_98": statistics.mean(recalls) >= 0.98,
                "complete": complete == len(hearth_ms),
            }
            if label in ("1%", "0.1%"):
                targets["p50_le_1_2x_exact"] = ratio <= 1.2
            result = {
                "bench": "vector_search",
                "dataset": kind,
                "rows": rows,
                "case": label,
                "matching_rows": matching,
                "limit": args.limit,
                "queries": len(hearth_ms),
                "exact_queries": len(exact_ms),
                "path": paths,
                "hearth_p50_ms": round(statistics.median(hearth_ms), 2),
                "hearth_p99_ms": round(p99, 2),
                "recall_at_10": round(statistics.mean(recalls), 4),
                "complete": round(complete / len(hearth_ms), 4),
                "exact_p50_ms": round(statistics.median(exact_ms), 2),
                "exact_p99_ms": round(percentile(exact_ms, 0.99), 2),
                "p50_ratio_vs_exact": round(ratio, 3),
                "targets_met": targets,
            }
            print(json.dumps(result), flush=True)
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", default="100000", help="comma-separated table sizes (default 100000)"
    )
    parser.add_argument(
        "--datasets", default="realistic,hard", help="comma-separated: realistic, hard"
    )
    parser.add_argument("--queries", type=int, default=1000, help="measured searches per case")
    parser.add_argument(
        "--exact-queries",
        type=int,
        default=100,
        help="of those, how many are also run exactly (for recall and the anchor's latency)",
    )
    parser.add_argument(
        "--no-plain", action="store_true", help="skip the plain HNSW index built for comparison"
    )
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured queries first")
    parser.add_argument("--limit", type=int, default=10)
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

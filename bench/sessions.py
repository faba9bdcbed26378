"""The two-tier session store next to raw redis-py, in one run, on the same servers.

Prints one JSON object per measurement:

- ``hot_get`` / ``hot_save``: p50/p99 of ``store.get`` / ``store.save`` of a hot session
  next to a raw redis-py ``GET`` / ``SET`` of the same JSON document, interleaved call by
  call, and the ratio of the p50s (targets: <= 1.3x and <= 1.5x); also next to ``GET`` +
  ``json.loads`` / ``json.dumps`` + ``SET``, the least any user of the document does;
- ``promotion``: p50/p99 of ``get`` of a cold session (targets: p99 <= 2 ms with the
  PostgreSQL cold tier, <= 0.5 ms with the Redis one);
- ``demotion_sweep``: sessions per second moved by ``demote_idle(limit=1000)`` calls
  (targets: >= 5,000/s PostgreSQL, >= 20,000/s Redis);
- ``bytes_per_session``: hot and cold bytes per session from ``stats()``;
- ``concurrency``: N read-increment-save operations from threads on overlapping sessions
  while a sweeper keeps demoting them: errors other than ConflictError and lost updates
  (target: 10,000 operations, 0 and 0).

    python bench/sessions.py                       # embedded Redis and PostgreSQL
    python bench/sessions.py --redis-url redis://127.0.0.1:6379/0 \\
        --database-url postgresql://postgres@127.0.0.1:5432/hearth_bench --tiers redis
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
import sqlalchemy as sa

from stores.common.clock import ManualClock
from stores.errors import ConflictError
from stores.postgres.engine import create_engine
from stores.sessions import Session, StepVisit
from stores.sessions.redis import RedisSessionStore
from workers import migrations
from workers.embedded import start_postgres, start_redis

HOT_TTL = timedelta(minutes=30)
TARGETS = {
    "hot_get_ratio": 1.3,
    "hot_save_ratio": 1.5,
    "promotion_p99_ms": {"postgres": 2.0, "redis": 0.5},
    "demotion_per_second": {"postgres": 5_000, "redis": 20_000},
}


@contextlib.contextmanager
def servers(redis_url: str | None, database_url: str | None) -> Iterator[tuple[str, str]]:
    """The given servers, or embedded ones for the run; the schema migrated to head."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hearth-bench-")))
        if not database_url:
            pg = start_postgres(tmp / "postgres", keep=False, tune=False)
            stack.callback(pg.stop)
            database_url = pg.url
        if not redis_url:
            rd = start_redis(tmp / "redis")
            stack.callback(rd.stop)
            redis_url = rd.url
        migrations.upgrade(database_url, "head")
        yield redis_url, database_url


def sample_session(tenant: UUID, agent: UUID, i: int) -> Session:
    """A session of a realistic size (about 2 KB of JSON)."""
    entered = datetime(2030, 1, 1, tzinfo=UTC)
    return Session(
        tenant_id=tenant,
        agent_id=agent,
        customer_profile_id=uuid4(),
        channel="whatsapp",
        user_channel_id=f"+33 6 {i:08d}",
        active_scenario_id=uuid4(),
        active_scenario_version=3,
        current_step_id="collect_address",
        variables={
            "locale": "fr-FR",
            "cart": [{"sku": f"sku-{k}", "qty": k % 3 + 1, "price": 9.99 + k} for k in range(6)],
            "customer_name": "Camille Martin",
            "last_intent": "order_status",
            "turns": i % 40,
            "notes": "prefers evening delivery; asked twice about the return policy",
        },
        step_history=[
            StepVisit(step_id=f"step_{k}", entered_at=entered, turn_number=k) for k in range(8)
        ],
    )


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 4),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 4),
        "mean_ms": round(statistics.fmean(ordered), 4),
    }


def reset(redis_url: str, database_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    engine = create_engine(database_url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE sessions"))
    engine.dispose()


def build(redis_url: str, database_url: str, tier: str, clock: ManualClock) -> RedisSessionStore:
    return RedisSessionStore.from_url(
        redis_url,
        hot_ttl=HOT_TTL,
        cold_tier="postgres" if tier == "postgres" else "redis",
        database_url=database_url if tier == "postgres" else None,
        clock=clock,
        pool_size=20,
    )


def bench_hot(store: RedisSessionStore, raw: redis.Redis, calls: int, tier: str) -> None:
    """Hot get and save next to raw GET and SET of the same document, interleaved.

    A second anchor adds what any reader or writer of the JSON must do at least:
    ``json.loads`` after the GET, ``json.dumps`` of the same data before the SET.
    """
    tenant, agent = uuid4(), uuid4()
    session = store.save(sample_session(tenant, agent, 0))
    document = session.model_dump_json().encode()
    plain = json.loads(document)
    raw.set("bench:raw", document)
    for _ in range(200):  # warm up connections and script caches
        store.get(tenant, session.id)
        raw.get("bench:raw")
    ours, anchor, parsed = [], [], []
    for _ in range(calls):
        ours.append(timed(lambda: store.get(tenant, session.id)))
        anchor.append(timed(lambda: raw.get("bench:raw")))
        parsed.append(timed(lambda: json.loads(raw.get("bench:raw"))))  # type: ignore[arg-type]
    report("hot_get", tier, ours, anchor, parsed, TARGETS["hot_get_ratio"], len(document))

    ours, anchor, parsed = [], [], []
    box = [session]
    for _ in range(calls):
        box[0].variables["turns"] += 1  # type: ignore[operator]
        ours.append(timed(lambda: box.append(store.save(box.pop()))))
        anchor.append(timed(lambda: raw.set("bench:raw", document)))
        parsed.append(timed(lambda: raw.set("bench:raw", json.dumps(plain))))
    report("hot_save", tier, ours, anchor, parsed, TARGETS["hot_save_ratio"], len(document))


def report(
    name: str,
    tier: str,
    ours: list[float],
    anchor: list[float],
    with_json: list[float],
    target: float,
    size: int,
) -> None:
    mine, theirs, plain = summary(ours), summary(anchor), summary(with_json)
    ratio = mine["p50_ms"] / theirs["p50_ms"]
    command = "GET" if "get" in name else "SET"
    emit(
        {
            "bench": name,
            "cold_tier": tier,
            "calls": len(ours),
            "document_bytes": size,
            "hearth": mine,
            "anchor": {"what": f"raw redis-py {command}", **theirs},
            "ratio_p50": round(ratio, 3),
            "target_ratio": target,
            "meets_target": ratio <= target,
            "anchor_with_json": {
                "what": f"raw redis-py {command} with json."
                + ("loads" if command == "GET" else "dumps"),
                **plain,
            },
            "ratio_p50_with_json": round(mine["p50_ms"] / plain["p50_ms"], 3),
        }
    )


def bench_tiers(store: RedisSessionStore, clock: ManualClock, tier: str, count: int) -> None:
    """Demotion throughput, bytes per session in each tier, promotion latency."""
    tenants = [uuid4() for _ in range(10)]
    agent = uuid4()
    sessions = [store.save(sample_session(tenants[i % 10], agent, i)) for i in range(count)]
    hot = store.stats()
    clock.advance(seconds=HOT_TTL.total_seconds())
    moved, start = 0, time.perf_counter()
    while True:
        step = store.demote_idle(limit=1000)
        moved += step
        if step < 1000:
            break
    elapsed = time.perf_counter() - start
    rate = moved / elapsed
    target = TARGETS["demotion_per_second"][tier]  # type: ignore[index]
    emit(
        {
            "bench": "demotion_sweep",
            "cold_tier": tier,
            "sessions": moved,
            "seconds": round(elapsed, 3),
            "per_second": round(rate),
            "target_per_second": target,
            "meets_target": rate >= target,
        }
    )
    cold = store.stats()
    emit(
        {
            "bench": "bytes_per_session",
            "cold_tier": tier,
            "hot_bytes_per_session": round(hot.hot_bytes / max(hot.hot_sessions, 1)),
            "cold_bytes_per_session": round(cold.cold_bytes / max(cold.cold_sessions, 1)),
            "redis_bytes_per_cold_session": round(
                cold.cold_bytes / max(cold.cold_sessions, 1) if tier == "redis" else 0
            ),
            "note": "Redis tiers: sampled MEMORY USAGE; PostgreSQL: table + indexes on disk",
        }
    )
    latencies = [
        timed(lambda s=s: store.get(s.tenant_id, s.id))  # type: ignore[misc]
        for s in random.sample(sessions, min(len(sessions), 2000))
    ]
    target_ms = TARGETS["promotion_p99_ms"][tier]  # type: ignore[index]
    figures = summary(latencies)
    emit(
        {
            "bench": "promotion",
            "cold_tier": tier,
            "calls": len(latencies),
            "hearth": figures,
            "anchor": {"what": "the request's bound", "p99_ms": 50.0},
            "target_p99_ms": target_ms,
            "meets_target": figures["p99_ms"] <= target_ms,
        }
    )


def bench_concurrency(store: RedisSessionStore, clock: ManualClock, tier: str, ops: int) -> None:
    """Read-increment-save from threads on overlapping sessions while a sweeper demotes."""
    tenant, agent = uuid4(), uuid4()
    ids = [store.save(sample_session(tenant, agent, i)).id for i in range(32)]
    landed: Counter[UUID] = Counter()
    outcome: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    threads = 32

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(ops // threads):
            sid = rng.choice(ids)
            try:
                session = store.get(tenant, sid)
                assert session is not None
                session.variables["turns"] += 1
                store.save(session)
                with lock:
                    landed[sid] += 1
                    outcome["landed"] += 1
            except ConflictError:
                with lock:
                    outcome["conflict"] += 1
            except Exception as exc:
                with lock:
                    errors.append(repr(exc))

    def sweeper() -> None:
        while not done.wait(0.05):
            clock.advance(seconds=HOT_TTL.total_seconds())
            moved = store.demote_idle()
            with lock:
                outcome["demoted"] += moved

    start_turns = {sid: store.get(tenant, sid).variables["turns"] for sid in ids}  # type: ignore[union-attr]
    sweep = threading.Thread(target=sweeper)
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    sweep.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - start
    done.set()
    sweep.join()
    lost = 0
    for sid in ids:
        final = store.get(tenant, sid)
        assert final is not None
        lost += abs(final.variables["turns"] - start_turns[sid] - landed[sid])
    emit(
        {
            "bench": "concurrency",
            "cold_tier": tier,
            "threads": threads,
            "operations": outcome["landed"] + outcome["conflict"] + len(errors),
            "landed": outcome["landed"],
            "conflicts": outcome["conflict"],
            "demoted_meanwhile": outcome["demoted"],
            "errors": len(errors),
            "first_errors": errors[:3],
            "lost_updates": lost,
            "seconds": round(elapsed, 3),
            "meets_target": not errors and lost == 0,
        }
    )


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--tiers", default="postgres,redis")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--concurrent-ops", type=int, default=10_000)
    args = parser.parse_args()
    with servers(args.redis_url, args.database_url) as (redis_url, database_url):
        raw = redis.Redis.from_url(redis_url)
        for tier in args.tiers.split(","):
            reset(redis_url, database_url)
            clock = ManualClock(datetime.now(UTC))
            store = build(redis_url, database_url, tier, clock)
            try:
                bench_hot(store, raw, args.calls, tier)
                bench_tiers(store, clock, tier, args.sessions)
                bench_concurrency(store, clock, tier, args.concurrent_ops)
            finally:
                store.close()
        raw.close()


if __name__ == "__main__":
    main()

"""Demotion sweep throughput: through the task path (broker + worker) next to a direct call.

For each cold tier (PostgreSQL, Redis) the same number of idle hot sessions is demoted twice
in the same run, on the same servers:

- ``direct``: ``workers.sweeps.demote_idle`` on the store, in this process (the anchor:
  what the store itself can do);
- ``task``: ``hearth.maintenance.demote_idle_sessions`` sent through the broker to a real
  worker (a thread in this process), which takes the job's lock, sweeps, records the run and
  returns its JSON result.

It prints one JSON object per cold tier: sessions, seconds and sessions/s of each path, the
ratio task/direct, and the design's target for the tier.

With ``--by-tenants`` it measures instead what a sweep costs by tenant count, calling the
store's ``demote_idle``/``purge_expired`` (limit 1,000) until done: the same number of
sessions as 1 tenant x N (the anchor) and N tenants x 1, taking turns, the best of
``--rounds`` runs of each, side by side with their ratio (target >= 0.8), and an empty
demote + purge pass (nothing due) at 1,000, 10,000 and 100,000 tenants
(``--empty-tenants``; target <= 10 ms, growing no faster than the log of the tenant count).

With ``--workers 1,2,4`` it measures how a sharded demotion sweep scales with worker
processes: for each count, a real Celery worker (``celery -A workers.app worker``, prefork
pool, that many child processes) on ``--broker-url`` (RabbitMQ by default), the beat's
demotion task sent once, and the clock stopped when every shard's run has ended; the same
idle sessions each time, over 64 tenants (one per registry bucket, so every shard has as
many). It prints demotions per second for each count, with the 1-process run as the anchor
and each ratio to it.

    python bench/sweeps.py                       # 10,000 sessions, embedded servers
    python bench/sweeps.py --sessions 5000 --redis-url redis://127.0.0.1:6379/0 \\
        --database-url postgresql://postgres@127.0.0.1:5432/hearth_bench
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
import sqlalchemy as sa
from celery.contrib.testing.worker import start_worker

from stores.common.clock import ManualClock, utc_now
from stores.postgres.engine import create_engine
from stores.sessions import Session
from stores.sessions.redis import RedisSessionStore
from workers import jobs, migrations, sweeps
from workers.app import celery_url, create_app
from workers.context import WorkerContext, install_context
from workers.embedded import start_postgres, start_redis
from workers.settings import Settings

TARGETS = {"postgres": 5_000, "redis": 20_000}
"""Sessions demoted per second the design asks for (DESIGN.md section 8)."""

BATCH = 1000

SHARDS = 8
"""Shards of the sweep in the ``--workers`` mode (HEARTH_SWEEP_SHARDS)."""


@contextlib.contextmanager
def servers(redis_url: str | None, database_url: str | None) -> Iterator[tuple[str, str]]:
    """The given servers, or embedded ones for the run (a fresh, migrated database)."""
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


def _reset(redis_url: str, database_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    # In the background: a synchronous flush of a million keys outlasts the socket timeout.
    client.flushdb(asynchronous=True)
    client.close()
    engine = create_engine(database_url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE sessions"))
    engine.dispose()


def _store(redis_url: str, database_url: str, tier: str, clock: Any) -> RedisSessionStore:
    return RedisSessionStore.from_url(
        redis_url,
        cold_tier="postgres" if tier == "postgres" else "redis",
        database_url=database_url if tier == "postgres" else None,
        clock=clock,
    )


def _seed(redis_url: str, database_url: str, tier: str, count: int) -> None:
    """``count`` hot sessions over 20 tenants, idle for two hours by the real clock."""
    _reset(redis_url, database_url)
    store = _store(redis_url, database_url, tier, ManualClock(utc_now() - timedelta(hours=2)))
    tenants = [uuid4() for _ in range(20)]
    agent = uuid4()
    for i in range(count):
        store.save(
            Session(
                tenant_id=tenants[i % len(tenants)],
                agent_id=agent,
                channel="web",
                user_channel_id=f"user-{i}",
                variables={"cart": ["sku-1", "sku-2"], "locale": "en", "step": i % 7},
            )
        )
    store.close()


def _direct(redis_url: str, database_url: str, tier: str, count: int) -> tuple[int, float]:
    _seed(redis_url, database_url, tier, count)
    store = _store(redis_url, database_url, tier, utc_now)
    start = time.perf_counter()
    result = sweeps.demote_idle(store, batch_size=BATCH, time_budget_seconds=3600)
    elapsed = time.perf_counter() - start
    store.close()
    return result.processed, elapsed


def _task(
    redis_url: str, database_url: str, tier: str, count: int, broker: str
) -> tuple[int, float]:
    _seed(redis_url, database_url, tier, count)
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        database_url=database_url,
        session_cold_tier=tier,
        broker_url=broker,
        result_backend=broker,
        sweep_batch_size=BATCH,
        sweep_time_budget_seconds=3600,
    )
    app = create_app(settings)
    context = WorkerContext.build(settings)
    install_context(context)
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        start = time.perf_counter()
        result = app.send_task(jobs.TASK_NAMES[jobs.DEMOTE]).get(timeout=3600)
        elapsed = time.perf_counter() - start
    install_context(None)
    app.close()
    return int(result["demoted"]), elapsed


def _seed_layout(
    redis_url: str, database_url: str, tier: str, tenants: int, each: int, clock: ManualClock
) -> RedisSessionStore:
    _reset(redis_url, database_url)
    store = _store(redis_url, database_url, tier, clock)
    for _ in range(tenants):
        tenant, agent = uuid4(), uuid4()
        for i in range(each):
            store.save(
                Session(tenant_id=tenant, agent_id=agent, channel="web", user_channel_id=f"u{i}")
            )
    return store


def _until_done(call: Any) -> tuple[int, float]:
    total, start = 0, time.perf_counter()
    while (done := call(limit=1000)) > 0:
        total += done
    return total, time.perf_counter() - start


def _layout(redis_url: str, database_url: str, tier: str, tenants: int, each: int) -> Any:
    clock = ManualClock(utc_now())
    store = _seed_layout(redis_url, database_url, tier, tenants, each, clock)
    clock.advance(hours=1)
    # The first pass of a store, and then one pass in RECONCILE_EVERY (10 minutes), also
    # walks every tenant to repair late hints: timed apart, since the sweeps between do not.
    start = time.perf_counter()
    store.demote_idle(limit=1)
    first_pass_s = time.perf_counter() - start
    demoted, demote_s = _until_done(store.demote_idle)
    clock.advance(days=8)
    purged, purge_s = _until_done(store.purge_expired)
    store.close()
    return {
        "tenants": tenants,
        "sessions_each": each,
        "demotion_per_second": round(demoted / demote_s),
        "purge_per_second": round(purged / purge_s),
        "first_pass_with_reconcile_ms": round(first_pass_s * 1000, 1),
    }


def _empty_pass(redis_url: str, database_url: str, tier: str, tenants: int) -> float:
    store = _seed_layout(redis_url, database_url, tier, tenants, 1, ManualClock(utc_now()))
    store.demote_idle(limit=1)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        store.demote_idle()
        store.purge_expired()
        times.append(time.perf_counter() - start)
    store.close()
    return sorted(times)[len(times) // 2] * 1000


def by_tenants(
    redis_url: str,
    database_url: str,
    tier: str,
    sessions: int,
    empty_counts: list[int],
    rounds: int = 3,
) -> None:
    """Print the sweep cost by tenant count (see the module docstring): the best of
    ``rounds`` runs of each layout, the two layouts taking turns."""
    ones, manys = [], []
    for _ in range(rounds):
        ones.append(_layout(redis_url, database_url, tier, 1, sessions))
        manys.append(_layout(redis_url, database_url, tier, sessions, 1))
    one, many = _best(ones), _best(manys)
    empty = {n: round(_empty_pass(redis_url, database_url, tier, n), 2) for n in empty_counts}
    print(
        json.dumps(
            {
                "bench": "sweeps_by_tenants",
                "cold_tier": tier,
                "anchor_one_tenant": one,
                "many_tenants": many,
                "ratio_demotion": round(
                    many["demotion_per_second"] / one["demotion_per_second"], 3
                ),
                "ratio_purge": round(many["purge_per_second"] / one["purge_per_second"], 3),
                "target_ratio": 0.8,
                "empty_pass_ms_by_tenants": empty,
                "target_empty_pass_ms": 10,
            }
        ),
        flush=True,
    )


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The best rate of each kind over runs of one layout, and every run's rates."""
    best = dict(runs[0])
    for rate in ("demotion_per_second", "purge_per_second"):
        best[rate] = max(run[rate] for run in runs)
        best[f"{rate}_runs"] = [run[rate] for run in runs]
    return best


def _seed_spread(
    redis_url: str, database_url: str, tier: str, count: int, clock: ManualClock
) -> None:
    """``count`` hot sessions over 64 tenants, one per registry bucket."""
    _reset(redis_url, database_url)
    store = _store(redis_url, database_url, tier, clock)
    tenants = [UUID(int=(uuid4().int & ~63) | bucket) for bucket in range(64)]
    agent = uuid4()
    for i in range(count):
        store.save(
            Session(
                tenant_id=tenants[i % len(tenants)],
                agent_id=agent,
                channel="web",
                user_channel_id=f"user-{i}",
                variables={"cart": ["sku-1", "sku-2"], "locale": "en", "step": i % 7},
            )
        )
    store.close()


@contextlib.contextmanager
def _celery_worker(env: dict[str, str], processes: int) -> Iterator[None]:
    """A ``celery worker`` with ``processes`` prefork children, until it answers a ping."""
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "celery", "-A", "workers.app", "worker"]
    command += ["--pool=prefork", f"--concurrency={processes}", "--queues=maintenance"]
    command += ["--loglevel=WARNING", "--without-gossip", "--without-mingle"]
    worker = subprocess.Popen(
        command,
        env={**os.environ, **env, "PYTHONPATH": str(root)},
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _workers_run(
    redis_url: str, database_url: str, tier: str, count: int, processes: int, broker: str
) -> tuple[int, float]:
    """Demotions and seconds of one sharded demotion sweep run by ``processes`` processes."""
    _seed_spread(redis_url, database_url, tier, count, ManualClock(utc_now() - timedelta(hours=2)))
    env = {
        "HEARTH_REDIS_URL": redis_url,
        "HEARTH_DATABASE_URL": database_url,
        "HEARTH_SESSION_COLD_TIER": tier,
        "HEARTH_BROKER_URL": broker,
        "HEARTH_RESULT_BACKEND": "rpc://",
        "HEARTH_SWEEP_SHARDS": str(SHARDS),
        "HEARTH_SWEEP_BATCH_SIZE": str(BATCH),
        "HEARTH_SWEEP_TIME_BUDGET_SECONDS": "3600",
    }
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        database_url=database_url,
        broker_url=broker,
        result_backend="rpc://",
    )
    app = create_app(settings)
    app.control.purge()
    client = redis.Redis.from_url(redis_url)
    names = tuple(jobs.run_name(jobs.DEMOTE, i) for i in range(SHARDS))
    try:
        with _celery_worker(env, processes):
            deadline = time.monotonic() + 120
            while not app.control.ping(timeout=0.5):
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker did not start")
            sent_at = utc_now()
            start = time.perf_counter()
            app.send_task(jobs.TASK_NAMES[jobs.DEMOTE])
            while True:
                runs = [
                    r
                    for r in jobs.last_runs(client, names).values()
                    if r is not None and r.started_at >= sent_at
                ]
                if len(runs) == SHARDS:
                    break
                if time.perf_counter() - start > 3600:
                    raise RuntimeError("the shards did not finish")
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
    finally:
        client.close()
        app.close()
    return sum(int(r.result.get("demoted", 0)) for r in runs), elapsed


def by_workers(
    redis_url: str, database_url: str, tier: str, sessions: int, counts: list[int], broker: str
) -> None:
    """Print demotions per second of a sharded sweep by worker processes, side by side."""
    rates: dict[int, dict[str, Any]] = {}
    for processes in counts:
        demoted, seconds = _workers_run(redis_url, database_url, tier, sessions, processes, broker)
        rates[processes] = {
            "demoted": demoted,
            "seconds": round(seconds, 3),
            "per_second": round(demoted / seconds),
        }
    anchor = rates[counts[0]]["per_second"]
    print(
        json.dumps(
            {
                "bench": "sweeps_by_workers",
                "cold_tier": tier,
                "sessions": sessions,
                "shards": SHARDS,
                "pool": "celery prefork, one worker, N child processes",
                "cpus": os.cpu_count(),
                "by_processes": rates,
                "anchor_processes": counts[0],
                "ratio_to_anchor": {
                    n: round(r["per_second"] / anchor, 3) for n, r in rates.items()
                },
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--tiers", default="postgres,redis")
    parser.add_argument("--by-tenants", action="store_true", help="sweep cost by tenant count")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each layout (--by-tenants)")
    parser.add_argument(
        "--empty-tenants",
        default="1000,10000,100000",
        help="tenant counts of the empty-pass measurement (--by-tenants)",
    )
    parser.add_argument(
        "--workers", default="", help="worker process counts to compare, e.g. 1,2,4"
    )
    parser.add_argument(
        "--broker-url",
        default="amqp://guest:guest@127.0.0.1:5672//",
        help="the broker of --workers",
    )
    args = parser.parse_args()
    with servers(args.redis_url, args.database_url) as (redis_url, database_url):
        if args.workers:
            counts = [int(n) for n in args.workers.split(",")]
            for tier in args.tiers.split(","):
                by_workers(redis_url, database_url, tier, args.sessions, counts, args.broker_url)
            return
        if args.by_tenants:
            for tier in args.tiers.split(","):
                counts = [int(n) for n in args.empty_tenants.split(",")]
                by_tenants(redis_url, database_url, tier, args.sessions, counts, args.rounds)
            return
        # The broker gets a database of its own, so that seeding never flushes its queues.
        broker = _other_db(celery_url(redis_url))
        for tier in args.tiers.split(","):
            direct_n, direct_s = _direct(redis_url, database_url, tier, args.sessions)
            task_n, task_s = _task(redis_url, database_url, tier, args.sessions, broker)
            direct_rate = direct_n / direct_s
            task_rate = task_n / task_s
            print(
                json.dumps(
                    {
                        "bench": "demotion_sweep",
                        "cold_tier": tier,
                        "sessions": args.sessions,
                        "batch_size": BATCH,
                        "direct": {
                            "demoted": direct_n,
                            "seconds": round(direct_s, 3),
                            "per_second": round(direct_rate),
                        },
                        "task": {
                            "demoted": task_n,
                            "seconds": round(task_s, 3),
                            "per_second": round(task_rate),
                        },
                        "ratio_task_to_direct": round(task_rate / direct_rate, 3),
                        "target_per_second": TARGETS[tier],
                        "meets_target": task_rate >= TARGETS[tier],
                    }
                ),
                flush=True,
            )


def _other_db(url: str) -> str:
    if url.startswith("redis+socket://"):
        return url.split("?")[0] + "?virtual_host=13"
    head, _, _ = url.rpartition("/")
    return f"{head}/13"


if __name__ == "__main__":
    main()

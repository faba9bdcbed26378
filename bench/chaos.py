"""Chaos run of the two-tier session store, longer than the test suite's (tests/chaos).

Mixed load from writer threads in several processes, four demoters and a purger, while
demoter processes are killed with SIGKILL mid-batch, the Redis server (started by the run,
AOF fsynced on every write) is killed and restarted, and PostgreSQL connections are
terminated. Prints one JSON object per cold tier: operations, ops_per_second, moves,
recreations, fence_refusals, faults by kind, and the anomalies found (lost, stale,
resurrected, backwards_versions, orphan_index_entries, ...), with ``problems`` listing what
fails the test's verdict.

    python bench/chaos.py                                  # 300 s per tier, embedded PostgreSQL
    python bench/chaos.py --seconds 600 --cold-tier postgres \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/chaos.py --cold-tier redis --check        # exit 1 if the verdict fails

``--database-url`` names a server: the run creates a migrated database of its own there and
drops it afterwards (default: HEARTH_TEST_DATABASE_URL, else an embedded PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import services
from tests.chaos import harness


@contextlib.contextmanager
def database(server_url: str | None) -> Iterator[str]:
    """A migrated database for one run, on the given server or the test one."""
    if server_url:
        with harness.chaos_database(server_url) as url:
            yield url
        return
    with services.postgres_server() as server, harness.chaos_database(server) as url:
        yield url


def run(args: argparse.Namespace, tier: str, binary: str) -> dict[str, object]:
    """One chaos run on ``tier``; the report with the verdict's problems."""
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    with contextlib.ExitStack() as stack:
        database_url = (
            stack.enter_context(database(args.database_url)) if tier == "postgres" else None
        )
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hearth-chaos-")))
        config = harness.ChaosConfig(
            cold_tier=tier,
            seconds=args.seconds,
            database_url=database_url,
            seed=seed,
            writer_processes=args.writer_processes,
            threads_per_process=args.threads,
        )
        report = harness.run_chaos(config, work_dir, binary)
    floors = harness.Floors.for_seconds(args.seconds, fence_refusals=args.min_fence_refusals)
    report["problems"] = harness.verdict(report, floors)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--cold-tier", choices=("postgres", "redis", "both"), default="both")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server URL")
    parser.add_argument("--redis-server", default=None, help="the redis-server binary")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--writer-processes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="writer threads per process")
    parser.add_argument(
        "--min-fence-refusals", type=int, default=None, help="default: one per second"
    )
    parser.add_argument("--out", default=None, help="also write chaos-<tier>.json here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a verdict fails")
    args = parser.parse_args()
    binary = args.redis_server or harness.find_redis_server()
    if binary is None:
        sys.exit("no redis-server binary: install redis-server or pass --redis-server")
    tiers = ("postgres", "redis") if args.cold_tier == "both" else (args.cold_tier,)
    failed = False
    for tier in tiers:
        report = run(args, tier, binary)
        line = json.dumps(report, sort_keys=True)
        print(line, flush=True)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / f"chaos-{tier}.json").write_text(line + "\n")
        failed = failed or bool(report["problems"])
    if args.check and failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Migration time: an empty database to head, alone and eight at once.

The anchor, measured in the same run on the same server, is ``MetaData.create_all`` of the
same schema: the DDL alone, with no Alembic, no lock and no version bookkeeping. Each
measurement uses a brand-new database.

    python bench/migrations.py                     # embedded PostgreSQL
    python bench/migrations.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from stores.postgres.engine import normalize_url
from stores.postgres.schema import build_metadata
from tests import services
from workers import migrations

TARGET_SECONDS = 3.0
SEED_LIMIT_SECONDS = 30.0


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    """The given server, or an embedded one for the run."""
    if url:
        yield url
        return
    from workers.embedded import start_postgres

    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as tmp:
        pg = start_postgres(Path(tmp), keep=False, tune=False)
        try:
            yield pg.url
        finally:
            pg.stop()


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database, dropped afterwards."""
    name = f"hearth_bench_{uuid.uuid4().hex[:10]}"
    url = services.create_database(server_url, name)
    try:
        yield url
    finally:
        services.drop_database(server_url, name)


def time_upgrade(server_url: str) -> float:
    with fresh_database(server_url) as url:
        start = time.perf_counter()
        migrations.upgrade(url, "head")
        return time.perf_counter() - start


def time_create_all(server_url: str) -> float:
    with fresh_database(server_url) as url:
        engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
        start = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
            build_metadata().create_all(conn)
        elapsed = time.perf_counter() - start
        engine.dispose()
        return elapsed


def time_concurrent(server_url: str, processes: int) -> tuple[float, int]:
    """Seconds until all of ``processes`` concurrent upgrades finished, and how many failed."""
    code = "import sys; from workers import migrations; migrations.upgrade(sys.argv[1], 'head')"
    with fresh_database(server_url) as url:
        # Wall time includes starting the interpreters; one import alone is reported beside it.
        start = time.perf_counter()
        procs = [
            subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE)
            for _ in range(processes)
        ]
        failures = sum(1 for p in procs if p.wait(timeout=300) != 0)
        return time.perf_counter() - start, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server with pgvector")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--processes", type=int, default=8)
    args = parser.parse_args()
    with server(args.database_url) as url:
        upgrade = [time_upgrade(url) for _ in range(args.repeat)]
        anchor = [time_create_all(url) for _ in range(args.repeat)]
        import_start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from workers import migrations"], check=True)
        import_seconds = time.perf_counter() - import_start
        concurrent, failures = time_concurrent(url, args.processes)
    print(
        json.dumps(
            {
                "measurement": "upgrade empty database to head",
                "hearth_p50_s": round(statistics.median(upgrade), 3),
                "hearth_max_s": round(max(upgrade), 3),
                "anchor": "MetaData.create_all (DDL only)",
                "anchor_p50_s": round(statistics.median(anchor), 3),
                "ratio": round(statistics.median(upgrade) / statistics.median(anchor), 2),
                "target_s": TARGET_SECONDS,
                "seed_limit_s": SEED_LIMIT_SECONDS,
                "met": max(upgrade) <= TARGET_SECONDS,
            }
        )
    )
    print(
        json.dumps(
            {
                "measurement": f"{args.processes} concurrent upgrades of one empty database",
                "wall_s_including_interpreter_start": round(concurrent, 3),
                "one_interpreter_import_s": round(import_seconds, 3),
                "failures": failures,
                "met": failures == 0,
            }
        )
    )


if __name__ == "__main__":
    main()

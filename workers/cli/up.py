"""``hearth up``: servers, migrations, a worker and a beat, and what they do, until Ctrl-C.

The worker and the beat run as child processes in their own process group, so that one
Ctrl-C reaches only this supervisor, which then stops them in order: warm shutdown for the
worker (it finishes the task in hand), then the beat, then the embedded servers, whose data
stays under the data directory for the next start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

import typer
from rich.console import Console
from rich.table import Table

import beat_schedule
from stores.sessions.clients import Client, from_url
from workers import jobs, migrations, routing
from workers.cli.common import LOGLEVEL, fail
from workers.cli.display import run_line
from workers.cli.status import redis_memory
from workers.embedded import EmbeddedRedis
from workers.metrics.server import url as metrics_url
from workers.migrations import MigrationError
from workers.runtime import Servers, servers
from workers.settings import Settings, get_settings

STOP_TIMEOUT_SECONDS = 30.0
STARTUP_JOBS = (jobs.DEMOTE, jobs.PURGE, jobs.SCENARIO_MIGRATION)
"""Run once as soon as the worker is up, so the first results show without waiting a
whole interval (the beat's first tick comes one interval after it starts)."""


class UpError(RuntimeError):
    """``hearth up`` could not bring the system up or keep it running."""


@dataclass
class Child:
    """A worker or beat process started by ``hearth up``."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        """The last lines of its log."""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""


def child_settings(settings: Settings, found: Servers) -> Settings:
    """The settings the children run with: the servers found or started here."""
    return settings.model_copy(
        update={
            "database_url": found.database_url,
            "redis_url": found.redis_url,
            "data_dir": settings.data_dir.resolve(),
        }
    )


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of the children: this one, with every server URL made explicit."""
    # Imported on use: workers.app builds the Celery app from settings when imported, and
    # every `hearth` command (and its --help) loads this module.
    from workers.app import broker_url, result_backend

    env = dict(os.environ)
    env["HEARTH_DATABASE_URL"] = settings.database_url or ""
    env["HEARTH_REDIS_URL"] = settings.redis_url or ""
    env["HEARTH_BROKER_URL"] = broker_url(settings)
    env["HEARTH_RESULT_BACKEND"] = result_backend(settings)
    env["HEARTH_DATA_DIR"] = str(settings.data_dir)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # A supervisor killed with SIGKILL cannot stop its children; the kernel can.
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def start_child(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """Start ``python -m celery -A workers.app <args>`` with its output in a log file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("ab")
    command = [sys.executable, "-m", "celery", "-A", "workers.app", *args]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    return Child(name=name, process=process, log_path=log_path, log_file=log_file)


def stop_children(children: list[Child], console: Console, timeout: float) -> None:
    """Warm-stop every child (SIGTERM), then kill what is left after ``timeout``."""
    for child in children:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        for child in children:
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                console.print(f"[yellow]{child.name} did not stop in {timeout:.0f} s; killing it")
                child.process.kill()
                child.process.wait()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted again: killing the worker and the beat")
        for child in children:
            if child.alive():
                child.process.kill()
                child.process.wait()
    finally:
        for child in children:
            child.log_file.close()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _schedule_table(settings: Settings) -> Table:
    table = Table(title="periodic jobs", title_justify="left", box=None, pad_edge=False)
    table.add_column("job", style="bold")
    table.add_column("every", justify="right")
    table.add_column("queue")
    for job, entry in beat_schedule.build_schedule(settings).items():
        seconds = entry["schedule"].total_seconds()
        every = f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"
        table.add_row(job, every, entry["options"]["queue"])
    return table


def _kick(settings: Settings) -> None:
    """Send the startup runs of the sweeps."""
    from workers.app import create_app  # on use, as in child_env

    app = create_app(settings)
    try:
        for job in STARTUP_JOBS:
            task = jobs.TASK_NAMES[job]
            app.send_task(
                task,
                kwargs={"trigger": "startup"},
                queue=routing.queue_of(task),
                expires=120,
            )
    finally:
        app.close()


def _save_embedded_redis(found: Servers) -> None:
    # The embedded Redis is stopped without a save; sessions still hot must survive a restart.
    # Only the process that stops it saves (it may have taken over one a killed run left).
    for server in found.embedded:
        if isinstance(server, EmbeddedRedis) and server.owner:
            with contextlib.suppress(Exception):
                server.server.save()


def _worker_args(loglevel: str, concurrency: int) -> list[str]:
    queues = ",".join(routing.QUEUES)
    return [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency}",
        f"--hostname=hearth-up@{socket.gethostname()}",
        f"--queues={queues}",
        # One worker on one machine: nobody to synchronise with at start.
        "--without-mingle",
        "--without-gossip",
    ]


def _beat_args(loglevel: str, data_dir: Path) -> list[str]:
    return ["beat", f"--loglevel={loglevel}", f"--schedule={data_dir / 'beat-schedule'}"]


def _migrate(found: Servers, settings: Settings, console: Console) -> None:
    with console.status("applying migrations"):
        before = migrations.current_revision(found.database_url)
        migrations.upgrade(found.database_url, "head", dimensions=settings.embedding_dimensions)
    head = migrations.head_revision()
    note = "already at head" if before == head else f"{before or 'base'} -> {head}"
    console.print(f"[green]schema[/]  {note}")


def _warn_if_evicting(client: Client, console: Console) -> None:
    policy = redis_memory(client).get("maxmemory_policy")
    if policy and policy != "noeviction":
        console.print(
            f"[yellow]warning[/] Redis maxmemory-policy is {policy}: when memory runs out it "
            "drops hot sessions without a word; noeviction makes writes fail loudly instead"
        )


def run_up(settings: Settings, console: Console, *, concurrency: int, loglevel: str) -> int:
    """Bring everything up and show what the jobs do until interrupted; the exit code."""
    data_dir = settings.data_dir.resolve()
    settings = settings.model_copy(update={"data_dir": data_dir})
    embedded = not (settings.database_url and settings.redis_url)
    with _sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        try:
            with console.status("starting the embedded servers" if embedded else "connecting"):
                found = stack.enter_context(servers(settings))
            where = f"embedded, data in {data_dir}" if embedded else "configured"
            console.print(f"[green]servers[/] {where}")
            _migrate(found, settings, console)
            run_settings = child_settings(settings, found)
            client = from_url(run_settings.redis_url or "", socket_timeout=10)
            stack.callback(client.close)
            _warn_if_evicting(client, console)
            last_id = jobs.latest_stream_id(client)
            env = child_env(run_settings)
            children = [
                start_child("worker", _worker_args(loglevel, concurrency), env, data_dir / "logs"),
                start_child("beat", _beat_args(loglevel, data_dir), env, data_dir / "logs"),
            ]
            # Callbacks run last-in first-out: children stop before Redis is saved.
            stack.callback(_save_embedded_redis, found)
            stack.callback(stop_children, children, console, STOP_TIMEOUT_SECONDS)
            for child in children:
                pid = child.process.pid
                console.print(f"[green]{child.name:<7}[/] pid {pid}, log {child.log_path}")
            if served := metrics_url(run_settings):
                console.print(f"[green]metrics[/] {served}")
            console.print(_schedule_table(settings))
            _kick(run_settings)
            console.print("[dim]running; Ctrl-C stops everything[/]")
            _follow(client, last_id, children, console)
        except KeyboardInterrupt:
            console.print("\n[bold]stopping[/] the worker, the beat and the servers…")
    console.print("[green]stopped[/]" + (f"; data kept in {data_dir}" if embedded else ""))
    return 0


def _follow(client: Client, last_id: str, children: list[Child], console: Console) -> None:
    """Print each job run as it is recorded, until interrupted; UpError if a child dies."""
    while True:
        for stream_id, run in jobs.read_new(client, last_id, block_ms=1000):
            last_id = stream_id
            console.print(run_line(run))
        for child in children:
            if not child.alive():
                code = child.process.returncode
                console.print(f"[bold red]the {child.name} exited with code {code}[/]")
                tail = child.tail()
                if tail:
                    console.print(tail, markup=False, highlight=False)
                raise UpError(f"the {child.name} exited (code {code}); see {child.log_path}")


def up(
    concurrency: int = typer.Option(
        2, "--concurrency", "-c", envvar="HEARTH_WORKER_CONCURRENCY", help="worker processes"
    ),
    loglevel: str = LOGLEVEL,
) -> None:
    """Start everything: servers (embedded unless configured), migrations, a worker and a beat.

    Shows each periodic job's result as it happens; Ctrl-C stops everything cleanly and the
    embedded servers keep their data under HEARTH_DATA_DIR (.hearth) for the next start.
    """
    console = Console()
    try:
        code = run_up(get_settings(), console, concurrency=concurrency, loglevel=loglevel.upper())
    except (UpError, MigrationError, RuntimeError) as exc:
        fail(str(exc), exc)
        return
    raise typer.Exit(code=code)

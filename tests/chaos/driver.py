"""The driver of a chaos run: starts the components, advances the clock, injects faults,
quiesces, checks and reports."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from stores.postgres.engine import normalize_url
from tests.chaos.checker import Writer
from tests.chaos.common import (
    ANOMALIES,
    EPOCH,
    MAX_ROWS,
    ChaosConfig,
    Shared,
    SharedClock,
    WriterSpec,
    micros,
    new_uuid,
    stamp,
)
from tests.chaos.components import demote_loop, demoter_process, purger_process, writer_process
from tests.chaos.leftovers import inspect_leftovers
from tests.chaos.servers import ClusterServers, RedisServer, open_store


class ChaosRun:
    """Starts the components, advances the clock, injects faults, quiesces and checks."""

    def __init__(self, cfg: ChaosConfig, work_dir: Path, redis_binary: str) -> None:
        self.work_dir = work_dir
        self.server: RedisServer | ClusterServers = (
            ClusterServers() if cfg.cluster else RedisServer(redis_binary, work_dir / "redis")
        )
        self.cfg = cfg
        self.ctx = multiprocessing.get_context("spawn")
        errors_dir = work_dir / "errors"
        errors_dir.mkdir(parents=True, exist_ok=True)
        self.shared = Shared.create(self.ctx, errors_dir)
        self.rng = random.Random(cfg.seed)
        self.next_row = 0
        self.tenants = tuple(new_uuid(self.rng) for _ in range(cfg.tenants))
        self.specs: list[list[WriterSpec]] = []
        self.processes: dict[str, tuple[Any, int]] = {}
        self.demoters: list[tuple[Any, int]] = []
        self.threads: list[threading.Thread] = []
        self.faults: Counter[str] = Counter()
        self.fault_info: Counter[str] = Counter()
        self.errors: list[str] = []
        self.stop_driver = threading.Event()
        self.ops_samples: list[tuple[float, int]] = []
        self.fault_log: list[str] = []

    def row(self, count: int = 1) -> int:
        """Reserve ``count`` counter rows."""
        first = self.next_row
        self.next_row += count
        if self.next_row > MAX_ROWS:
            raise RuntimeError("too many components for the counter table")
        return first

    def start(self) -> None:
        """Start Redis and every component; return once all are ready."""
        self.server.start()
        self.cfg = replace(self.cfg, redis_url=self.server.url)
        cfg = self.cfg
        for p in range(cfg.writer_processes):
            group: list[WriterSpec] = []
            for t in range(cfg.threads_per_process):
                name = f"w{p}.{t}"
                group.append(
                    WriterSpec(
                        name=name,
                        row=self.row(),
                        tenant=self.tenants[(p * cfg.threads_per_process + t) % cfg.tenants],
                        agents=(new_uuid(self.rng), new_uuid(self.rng)),
                        customers=(new_uuid(self.rng), new_uuid(self.rng), new_uuid(self.rng)),
                        scenario=new_uuid(self.rng),
                        ids=tuple(new_uuid(self.rng) for _ in range(cfg.slots_per_writer)),
                        seed=self.rng.randrange(2**32),
                    )
                )
            self.specs.append(group)
            self.spawn(f"writers-{p}", writer_process, (cfg, self.shared, group), group[0].row)
        for _ in range(cfg.demoter_processes):
            self.spawn_demoter()
        purger_row = self.row(2)
        self.spawn(
            "purger", purger_process, (cfg, self.shared, purger_row, self.tenants[0]), purger_row
        )
        for _ in range(cfg.demoter_threads):
            row = self.row()
            store = open_store(cfg, SharedClock(self.shared.clock), pool_size=2)
            self.shared.put(row, "ready", 1)
            self.threads.append(
                threading.Thread(target=self._thread_demoter, args=(store, row), daemon=True)
            )
        self.wait_ready()

    def spawn(
        self, name: str, target: Callable[..., None], args: tuple[Any, ...], row: int = -1
    ) -> Any:
        """Start a process of the run."""
        process = self.ctx.Process(target=target, args=args, name=name, daemon=True)
        process.start()
        self.processes[name] = (process, row)
        return process

    def spawn_demoter(self) -> None:
        """Start a demoter process on a fresh counter row."""
        row = self.row()
        name = f"demoter-{row}"
        process = self.spawn(name, demoter_process, (self.cfg, self.shared, row), row)
        self.demoters.append((process, row))

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every process has opened its store."""
        deadline = time.monotonic() + timeout
        rows = [row for _, row in self.processes.values()]
        while not all(self.shared.value(r, "ready") for r in rows):
            dead = [n for n, (p, _) in self.processes.items() if not p.is_alive()]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"components did not start: {dead or 'timeout'}")
            time.sleep(0.05)

    def _thread_demoter(self, store: Any, row: int) -> None:
        try:
            demote_loop(store, self.shared, row, self.cfg.demote_limits)
        except Exception:
            self.errors.append(traceback.format_exc())
        finally:
            with contextlib.suppress(Exception):
                store.close()

    def run(self) -> dict[str, Any]:
        """The whole run: start, load with faults, quiesce, check; returns the report."""
        began = time.monotonic()
        phases: dict[str, float] = {}

        def phase(name: str, since: float) -> float:
            now = time.monotonic()
            phases[name] = round(now - since, 2)
            return now

        try:
            self.start()
            at = phase("start", began)
            load_seconds = self.load()
            at = phase("load", at)
            writers, feeder = self.quiesce()
            at = phase("quiesce", at)
            report = self.check(writers, feeder)
            phase("check", at)
        finally:
            self.cleanup()
        report["load_seconds"] = round(load_seconds, 2)
        report["phase_seconds"] = phases
        report["runtime_seconds"] = round(time.monotonic() - began, 2)
        ops = report["operations"]
        report["ops_per_second"] = round(ops / load_seconds, 1) if load_seconds else 0.0
        report["ops_per_second_held"] = _lowest_rate(self.ops_samples, HELD_WINDOW)
        return report

    def load(self) -> float:
        """Let the load and the faults run for the configured time; return its length."""
        clock = threading.Thread(target=self._clock, daemon=True)
        cfg = self.cfg
        interval = cfg.fault_interval or min(max(cfg.seconds / 12, 1.0), 10.0)
        outages = ["redis_kill"] + (["pg_terminate"] if cfg.cold_tier == "postgres" else [])
        faults = [
            threading.Thread(target=self._faults, args=(outages, interval, cfg.seed), daemon=True),
            threading.Thread(
                target=self._faults,
                args=(["demoter_kill"], cfg.demoter_kill_interval or interval / 3, cfg.seed + 1),
                daemon=True,
            ),
        ]
        self.shared.go.set()
        started = time.monotonic()
        for t in [clock, *faults, *self.threads]:
            t.start()
        self.threads.append(clock)
        deadline = started + self.cfg.seconds
        self.ops_samples = [(started, self.shared.total("ops"))]
        while time.monotonic() < deadline:
            time.sleep(0.1)
            self._check_alive()
            if time.monotonic() - self.ops_samples[-1][0] >= 1.0:
                self.ops_samples.append((time.monotonic(), self.shared.total("ops")))
        self.stop_driver.set()
        for t in faults:
            t.join(timeout=60)
        if not self.server.running():
            self.server.start()
        self.shared.stop.set()
        return time.monotonic() - started

    def _check_alive(self) -> None:
        for name, (process, _) in list(self.processes.items()):
            if name.startswith("demoter-"):
                continue  # killed on purpose; the fault injector replaces them
            if not process.is_alive() and process.exitcode not in (0, None):
                raise RuntimeError(f"{name} died with exit code {process.exitcode}")

    def _clock(self) -> None:
        step = micros(EPOCH + self.cfg.tick)
        while not self.shared.stop.is_set():
            time.sleep(self.cfg.tick_seconds)
            self.shared.clock.value += step

    def _faults(self, kinds: list[str], interval: float, seed: int) -> None:
        """Inject ``kinds`` in turn (each round shuffled) every ``interval`` seconds, from two
        seconds into the load until the last 15 % of it, which is left to recover in."""
        rng = random.Random(seed)
        start = time.monotonic()
        last = start + self.cfg.seconds * 0.85
        at = start + min(2.0, self.cfg.seconds * 0.1)
        order: list[str] = []
        while not self.stop_driver.is_set():
            if self.stop_driver.wait(max(0.0, at - time.monotonic())):
                return
            if time.monotonic() > last:
                return
            if not order:
                order = kinds[:]
                rng.shuffle(order)
            kind = order.pop()
            when = stamp()
            try:
                self.shared.fault_at.value = time.time()
                detail = getattr(self, "_" + kind)(rng)
                self.faults[kind] += 1
                self.fault_log.append(f"{when} {kind}{detail}")
            except Exception:
                self.errors.append(f"fault {kind}: {traceback.format_exc()}")
            at += interval

    def _demoter_kill(self, rng: random.Random) -> str:
        alive = [(p, r) for p, r in self.demoters if p.is_alive()]
        if not alive:
            self.spawn_demoter()
            return " (none alive)"
        # Wait for one to be inside demote_idle, so that the kill lands mid-batch.
        victim, busy = None, False
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and victim is None:
            for process, row in alive:
                if self.shared.value(row, "busy"):
                    victim, busy = (process, row), True
                    break
            else:
                time.sleep(0.0005)
        process, row = victim or rng.choice(alive)
        os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=10)
        self.demoters.remove((process, row))
        self.spawn_demoter()
        if busy:
            self.fault_info["demoter_kills_mid_batch"] += 1
            return " (mid-batch)"
        return ""

    def _redis_kill(self, rng: random.Random) -> str:
        self.shared.redis_outage[0] = time.time()
        if isinstance(self.server, ClusterServers):
            what = f" master {self.server.kill_one(rng)}"
        else:
            what = ""
            self.server.kill()
        down = rng.uniform(0.2, 1.0)
        time.sleep(down)
        self.server.start()
        self.shared.redis_outage[1] = time.time()
        self.fault_info["redis_down_ms"] += int(down * 1000)
        return f"{what} (down {down:.2f} s)"

    def _pg_terminate(self, rng: random.Random) -> str:
        assert self.cfg.database_url is not None
        engine = sa.create_engine(
            normalize_url(self.cfg.database_url),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.NullPool,
        )
        try:
            with engine.connect() as conn:
                ended = conn.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
        finally:
            engine.dispose()
        self.fault_info["pg_backends_terminated"] += int(ended)
        return f" ({ended} backends)"

    def quiesce(self) -> tuple[list[Writer], dict[str, Any]]:
        """Stop everything and collect the writers (with their models) and the feeder."""
        writers: list[Writer] = []
        feeder: dict[str, Any] = {}
        expected = len(self.specs) + 1
        deadline = time.monotonic() + 180
        while expected and time.monotonic() < deadline:
            try:
                kind, _, payload = self.shared.results.get(timeout=1.0)
            except Exception:
                if not any(p.is_alive() for p, _ in self.processes.values()):
                    break
                continue
            expected -= 1
            if kind == "writers":
                writers.extend(payload)
            else:
                feeder = payload
        if expected:
            self.errors.append(f"{expected} components sent no result")
        for t in self.threads:
            t.join(timeout=30)
        for name, (process, _) in self.processes.items():
            process.join(timeout=30)
            if process.is_alive():
                self.errors.append(f"{name} did not stop")
        return writers, feeder

    def check(self, writers: list[Writer], feeder: dict[str, Any]) -> dict[str, Any]:
        """Final checks on the quiet system, and the report."""
        store = open_store(self.cfg, SharedClock(self.shared.clock), pool_size=2)
        try:
            purged_at_end = 0
            for _ in range(1000):
                n = store.purge_expired(limit=1000)
                purged_at_end += n
                if n == 0:
                    break
            expired_ids = {UUID(i) for i in feeder.get("ids", [])}
            leftovers = inspect_leftovers(self.cfg, self.tenants, writers, expired_ids)
            for writer in writers:
                try:
                    writer.final_check(store)
                except Exception:
                    self.errors.append(f"final check: {traceback.format_exc()}")
            stats = store.stats()
        finally:
            with contextlib.suppress(Exception):
                store.close()
        return self.report(writers, feeder, leftovers, purged_at_end, stats.model_dump())

    def report(
        self,
        writers: list[Writer],
        feeder: dict[str, Any],
        leftovers: dict[str, Any],
        purged_at_end: int,
        stats: dict[str, Any],
    ) -> dict[str, Any]:
        """The JSON report of the run."""
        shared = self.shared
        by_path: dict[str, Counter[str]] = {k: Counter() for k in ANOMALIES}
        distinct: dict[str, set[str]] = {k: set() for k in ANOMALIES}
        info: Counter[str] = Counter()
        samples: list[dict[str, Any]] = []
        errors = list(self.errors)
        store_errors: list[str] = []
        for writer in writers:
            for kind in ANOMALIES:
                by_path[kind].update(writer.anomalies[kind])
                distinct[kind] |= writer.distinct[kind]
            info.update(writer.info)
            samples.extend(writer.samples)
            errors.extend(writer.errors)
            store_errors.extend(writer.store_error_samples)
        resurrected_counts = leftovers.pop("resurrected_counts")
        if resurrected_counts:
            by_path["resurrected"]["counts"] += len(resurrected_counts)
        distinct["resurrected"] |= set(resurrected_counts)
        # Processes count their errors in shared memory and keep the first tracebacks in files.
        error_count = len(errors) + shared.total("errors")
        for path in sorted(Path(shared.errors_dir).glob("*.txt")):
            errors.append(f"{path.name}: {path.read_text()[-2000:]}")
        totals = {kind: sum(by_path[kind].values()) for kind in ANOMALIES}
        operations = shared.total("ops")
        report: dict[str, Any] = {
            "cold_tier": self.cfg.cold_tier,
            "seconds": self.cfg.seconds,
            "seed": self.cfg.seed,
            "writers": len(writers),
            "sessions": sum(len(w.slots) for w in writers),
            "operations": operations,
            "moves": shared.total("moves"),
            "purged": shared.total("purged") + purged_at_end,
            "recreations": info["recreations"],
            "fence_refusals": shared.total("fence_refusals"),
            "faults": {k: self.faults[k] for k in ("demoter_kill", "redis_kill", "pg_terminate")},
            **{k: totals[k] for k in ("lost", "stale", "resurrected", "backwards_versions")},
            "orphan_index_entries": leftovers["orphan_index_entries"],
            "unexplained": totals["unexplained"],
            "duplicated": totals["duplicated"],
            "expired_served": sum(feeder.get("served", {}).values()),
            "errors": error_count,
            "store_errors": info["store_errors"],
            "distinct_sessions": {k: len(distinct[k]) for k in ANOMALIES},
            "by_path": {k: dict(by_path[k]) for k in ANOMALIES if by_path[k]},
            "final_check_operations": info["ops"] - info["ops_in_load"],
            "uncertain_outcomes": info["uncertain"],
            "unresolved": info["unresolved"],
            "unavailable_errors": info["unavailable"] + shared.total("unavailable"),
            "raised_on_writes": {
                k.removeprefix("raised_"): v for k, v in info.items() if k.startswith("raised_")
            },
            "delete_found_nothing": info["delete_found_nothing"],
            "remarks": [r for w in writers for r in w.remarks][:5],
            "fault_details": dict(self.fault_info),
            "fault_log": sorted(self.fault_log),
            "leftovers": leftovers,
            "expired_created": len(feeder.get("ids", [])),
            "expired_served_by_path": feeder.get("served", {}),
            "final_stats": stats,
            "samples": samples[: self.cfg.samples],
            "error_samples": [e[-3000:] for e in errors[:5]],
            "store_error_samples": store_errors[:5],
        }
        return report

    def cleanup(self) -> None:
        """Stop whatever still runs: this run's processes and its Redis server."""
        self.stop_driver.set()
        self.shared.stop.set()
        self.shared.go.set()
        for process, _ in list(self.processes.values()):
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        self.server.kill()


HELD_WINDOW = 5.0
"""Seconds over which ``ops_per_second_held`` averages: the lowest such rate of the load."""


def _lowest_rate(samples: list[tuple[float, int]], window: float) -> float:
    """The lowest rate over any ``window`` seconds of (time, running count) samples."""
    rates = []
    for i, (t0, n0) in enumerate(samples):
        later = [(t, n) for t, n in samples[i + 1 :] if t - t0 >= window]
        if later:
            t1, n1 = later[0]
            rates.append((n1 - n0) / (t1 - t0))
    if not rates and len(samples) > 1:
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        rates.append((n1 - n0) / (t1 - t0))
    return round(min(rates), 1) if rates else 0.0

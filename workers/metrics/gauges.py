"""The gauges a collector thread measures and a scrape reads from its cache.

Tier counts and bytes, the idle backlog and the embedding backfill backlog cost a walk over
every tenant or a bounded listing: far too much for each scrape, and several scrapers (two
Prometheus servers, a curl) would multiply it. :class:`GaugeCollector` measures them every
``HEARTH_METRICS_COLLECT_INTERVAL_SECONDS`` in the worker's main process and keeps the
numbers in a :class:`GaugeSnapshot`, a prometheus_client collector that only reads them.

The thread writes no prometheus_client value: a value's lock held by a thread of the main
process at the moment the pool forks a new child would stay locked in that child for good.

Every worker measures the same sessions and rows, so these gauges are the same on every
worker: aggregate them across instances with ``max``, never ``sum``. A value the last
measurement could not take (its server down) is NaN until the next one succeeds.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workers import provider_registry
from workers.metrics.families import BACKFILL_KINDS, TIERS

if TYPE_CHECKING:
    from workers.context import WorkerContext

logger = logging.getLogger("hearth.metrics")

NAN = math.nan


class GaugeSnapshot(Collector):
    """The last measured values of the cached gauges; a scrape reads them and nothing else."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sessions: dict[str, float] = dict.fromkeys(TIERS, NAN)
        self.session_bytes: dict[str, float] = dict.fromkeys(TIERS, NAN)
        self.idle_backlog = NAN
        self.oldest_idle_seconds = NAN
        self.backfill_backlog: dict[str, float] = dict.fromkeys(BACKFILL_KINDS, NAN)
        self.measured = threading.Event()
        """Set once a measurement has completed (whatever it could measure)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges as of the last measurement (NaN: not measured yet, or it failed)."""
        with self._lock:
            sessions = GaugeMetricFamily(
                "hearth_sessions", "Sessions in each tier.", labels=["tier"]
            )
            size = GaugeMetricFamily(
                "hearth_session_bytes",
                "Bytes the sessions of each tier take (Redis tiers: sampled estimate).",
                labels=["tier"],
            )
            for tier in TIERS:
                sessions.add_metric([tier], self.sessions[tier])
                size.add_metric([tier], self.session_bytes[tier])
            backlog = GaugeMetricFamily(
                "hearth_embedding_backfill_backlog",
                "Rows the embedding backfill still has to embed (counted up to a cap).",
                labels=["kind"],
            )
            for kind in BACKFILL_KINDS:
                backlog.add_metric([kind], self.backfill_backlog[kind])
            idle = GaugeMetricFamily(
                "hearth_sessions_idle_backlog",
                "Hot sessions idle past hot_ttl: what the demotion sweep has still to move.",
                value=self.idle_backlog,
            )
            oldest = GaugeMetricFamily(
                "hearth_sessions_oldest_idle_seconds",
                "Idle time of the hot session idle longest (0 with no hot session).",
                value=self.oldest_idle_seconds,
            )
        yield from (sessions, size, idle, oldest, backlog)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The same families (the registry checks their names once)."""
        return self.collect()

    def measure(self, context: WorkerContext) -> None:
        """Measure every gauge from ``context``'s stores; a part that fails becomes NaN."""
        self._measure_sessions(context)
        self._measure_backfill(context)
        self.measured.set()

    def _measure_sessions(self, context: WorkerContext) -> None:
        try:
            store = context.sessions
            stats = store.stats()
            idle = store.count_idle()
            since = store.oldest_idle_since()
            oldest = 0.0 if since is None else max((context.clock() - since).total_seconds(), 0)
        except Exception as exc:
            logger.warning("metrics: cannot measure the session tiers: %s", _error(exc))
            with self._lock:
                self.sessions = dict.fromkeys(TIERS, NAN)
                self.session_bytes = dict.fromkeys(TIERS, NAN)
                self.idle_backlog = self.oldest_idle_seconds = NAN
            return
        with self._lock:
            self.sessions = {"hot": stats.hot_sessions, "cold": stats.cold_sessions}
            self.session_bytes = {"hot": stats.hot_bytes, "cold": stats.cold_bytes}
            self.idle_backlog = idle
            self.oldest_idle_seconds = oldest

    def _measure_backfill(self, context: WorkerContext) -> None:
        from workers.tasks import backfill

        counts: dict[str, float] = dict.fromkeys(BACKFILL_KINDS, NAN)
        try:
            spec = provider_registry.embedding_spec(context.settings)
            # With no database or no embedding model there is no backlog to speak of.
            if spec is not None and context.settings.database_url:
                found = backfill.backlog(context.config, context.memory, spec.model)
                counts = {kind: float(found.get(kind, 0)) for kind in BACKFILL_KINDS}
        except Exception as exc:
            logger.warning("metrics: cannot measure the backfill backlog: %s", _error(exc))
        with self._lock:
            self.backfill_backlog = counts


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class GaugeCollector:
    """A daemon thread measuring ``snapshot`` every ``interval`` seconds until stopped."""

    def __init__(
        self,
        snapshot: GaugeSnapshot,
        context: Callable[[], WorkerContext],
        interval: float,
    ) -> None:
        self.snapshot = snapshot
        self._context = context
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hearth-metrics", daemon=True)

    def start(self) -> None:
        """Measure at once, then every interval."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the measurement under way, if any."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.snapshot.measure(self._context())
            except Exception:
                logger.warning("metrics: measurement failed", exc_info=True)
            self._stop.wait(self.interval)

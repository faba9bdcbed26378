"""``/metrics`` of a worker: served by its main process on ``HEARTH_METRICS_PORT``.

The HTTP server and the gauge collector start from the ``worker_init`` signal, before the
pool forks its children, and stop at ``worker_shutdown``. In multiprocess mode (see
:mod:`workers.metrics`) a scrape sums the files every process of this worker wrote; a
family that no process has touched yet is still served, with no samples, so every family of
DESIGN §10 is on the endpoint from the first scrape.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from workers import metrics, provider_registry
from workers.metrics import families
from workers.metrics.gauges import GaugeCollector, GaugeSnapshot
from workers.settings import Settings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from workers.context import WorkerContext

logger = logging.getLogger("hearth.metrics")

DEFAULT_ADDRESS = "0.0.0.0"  # noqa: S104 - Prometheus scrapes workers from other machines


class _EveryFamily(Collector):
    """``source``'s metrics, plus an empty family for each hearth family it left out."""

    def __init__(self, source: Collector, declared: Iterable[MetricWrapperBase]) -> None:
        self._source = source
        self._declared = tuple(declared)

    def collect(self) -> Iterator[Metric]:
        seen: set[str] = set()
        for metric in self._source.collect():
            seen.add(metric.name)
            yield metric
        for family in self._declared:
            for metric in family.describe():
                if metric.name not in seen:
                    yield metric


def registry(snapshot: GaugeSnapshot) -> CollectorRegistry:
    """A registry serving every hearth family: this worker's processes' and ``snapshot``'s."""
    served = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    source: Collector = (
        MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]
        if path is not None
        else families.REGISTRY
    )
    served.register(_EveryFamily(source, families.FAMILIES))
    served.register(snapshot)
    return served


def multiprocess_dir() -> str | None:
    """The multiprocess directory prometheus_client writes to in this process, if any."""
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get(metrics.MULTIPROC_ENV)


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint and its gauge collector."""

    httpd: WSGIServer
    thread: threading.Thread
    collector: GaugeCollector

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.httpd.server_address[1])

    @property
    def snapshot(self) -> GaugeSnapshot:
        """The cached gauges it serves."""
        return self.collector.snapshot

    def stop(self) -> None:
        """Stop serving and collecting."""
        self.collector.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def url(settings: Settings, host: str = "localhost") -> str | None:
    """Where a worker with ``settings`` serves its metrics (None when it serves none)."""
    if not settings.metrics_port:
        return None
    return f"http://{host}:{settings.metrics_port}/metrics"


def initialise_providers(settings: Settings) -> None:
    """Create the series of the providers ``settings`` name (wrong settings: none)."""
    with contextlib.suppress(Exception):
        llm = provider_registry.llm_spec(settings)
        families.initialise_provider(llm.provider, llm.model)
    with contextlib.suppress(Exception):
        embedding = provider_registry.embedding_spec(settings)
        if embedding is not None:
            families.initialise_provider(embedding.provider, embedding.model)


def start(
    settings: Settings,
    context: Callable[[], WorkerContext],
    *,
    address: str = DEFAULT_ADDRESS,
) -> MetricsServer | None:
    """Serve ``/metrics`` on ``settings.metrics_port`` and start the gauge collector.

    Returns None when no port is set. A port already in use is logged and metrics are off:
    a worker still works without them."""
    port = settings.metrics_port
    if not port:
        return None
    initialise_providers(settings)
    snapshot = GaugeSnapshot()
    try:
        httpd, thread = start_http_server(port, address, registry(snapshot))
    except OSError as exc:
        logger.error("metrics: cannot serve on port %d: %s; metrics are off", port, exc)
        return None
    collector = GaugeCollector(snapshot, context, settings.metrics_collect_interval_seconds)
    collector.start()
    logger.info("metrics served on port %d at /metrics", port)
    return MetricsServer(httpd, thread, collector)


_lock = threading.Lock()
_server: MetricsServer | None = None


def start_for_worker(settings: Settings, context: Callable[[], WorkerContext]) -> None:
    """:func:`start` for this process's worker (once; a second call is ignored)."""
    global _server
    with _lock:
        if _server is None:
            _server = start(settings, context)


def running() -> MetricsServer | None:
    """This process's worker metrics server, if it runs."""
    return _server


def stop_for_worker() -> None:
    """Stop this process's worker metrics server, if it runs."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.stop()


def process_exited(pid: int) -> None:
    """Drop the live-gauge files of a pool process that exited (multiprocess mode).

    Its counter and histogram files stay: they hold counts the worker's totals include."""
    path = multiprocess_dir()
    if path is not None:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]

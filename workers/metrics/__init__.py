"""Prometheus metrics of the workers (the families and names of DESIGN §10).

Each worker serves ``/metrics`` on ``HEARTH_METRICS_PORT`` from its main process
(:mod:`workers.metrics.server`). Tasks run in the children of a prefork pool, so their
counters and histograms are kept in prometheus_client's multiprocess mode: every process
writes its own memory-mapped files in one directory, and the main process sums them at
scrape time. That mode is chosen when ``prometheus_client`` is first imported, so this
package, which every hearth module reaches prometheus_client through, sets
``PROMETHEUS_MULTIPROC_DIR`` first: a fresh, empty directory per worker (made here, removed
when the process that made it exits), and only when a metrics port is configured. A process
that imported prometheus_client before (a test runner, say) keeps the ordinary single-process
registry, which serves the same families.

The session and backfill gauges are not written by tasks: a collector thread in the main
process measures them every ``HEARTH_METRICS_COLLECT_INTERVAL_SECONDS`` and a scrape reads
the cached values (:mod:`workers.metrics.gauges`), so a scrape costs the same at any size.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_port() -> int | None:
    try:
        from workers.settings import get_settings

        return get_settings().metrics_port
    except Exception:
        # Wrong settings are reported by whatever reads them next; metrics stay single-process.
        return None


def _remove(path: str, owner: int) -> None:
    # Forked children inherit atexit handlers: only the process that made the directory
    # removes it.
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def _prepare_multiprocess() -> str | None:
    """Give this process a fresh multiprocess directory when it will serve metrics."""
    if "prometheus_client" in sys.modules or not _metrics_port():
        return None
    # A directory inherited through the environment (a worker started by another one) is
    # never reused: files of processes that are not ours would be summed in.
    path = tempfile.mkdtemp(prefix="hearth-metrics-")
    os.environ[MULTIPROC_ENV] = path
    atexit.register(_remove, path, os.getpid())
    return path


MULTIPROCESS_DIR = _prepare_multiprocess()
"""The multiprocess directory this process made, or None (single-process registry)."""

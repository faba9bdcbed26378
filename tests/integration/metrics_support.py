"""Reading a worker's ``/metrics`` in tests: a free port, a scrape, one sample's value."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Every sample of one scrape, by its name and labels."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape_text(port: int, timeout: float = 20.0) -> str:
    """The worker's exposition, waiting for its endpoint to come up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def scrape(port: int) -> tuple[set[str], Scrape]:
    """The family names served, and every sample by (name, labels)."""
    names: set[str] = set()
    samples: Scrape = {}
    for family in text_string_to_metric_families(scrape_text(port)):
        names.add(family.name)
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return names, samples


def value(samples: Scrape, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)

"""Builds each SessionStore backend for the session tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from stores.common.clock import ManualClock
from stores.sessions import InMemorySessionStore, SessionStore

HOT_TTL = timedelta(minutes=30)
MAX_AGE = timedelta(days=7)
MAX_BYTES = 64 * 1024


@contextmanager
def build_store(
    backend: str, request: pytest.FixtureRequest, clock: ManualClock
) -> Iterator[SessionStore]:
    """A fresh store of ``backend`` on ``clock``; servers come from the request's fixtures."""
    if backend == "memory":
        yield InMemorySessionStore(
            hot_ttl=HOT_TTL, max_age=MAX_AGE, clock=clock, max_bytes=MAX_BYTES
        )
        return
    raise ValueError(f"unknown session backend {backend!r}")

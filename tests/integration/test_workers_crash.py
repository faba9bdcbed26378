"""A sweep killed in the middle of its work loses nothing, and the next run finishes the job."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from stores.common.clock import ManualClock, utc_now
from stores.postgres.engine import create_engine
from stores.sessions import Tier
from stores.sessions.redis import RedisSessionStore
from tests.integration.workers_support import save_sessions, settings
from workers import jobs
from workers.context import WorkerContext
from workers.keys import lock_key
from workers.tasks import maintenance

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

SESSIONS = 600
BATCH = 5
SWEEP = """
import time
from stores.sessions.cold_postgres import PostgresColdTier
from workers.context import WorkerContext
from workers.settings import Settings
from workers.tasks import maintenance

real_put = PostgresColdTier.put
puts = []

def put_then_stall(self, entries, cutoff):
    written = real_put(self, entries, cutoff)
    puts.append(len(entries))
    if len(puts) == 2:
        # The second batch's copies are written and its hot copies not yet evicted: the
        # test kills the process right here, in the middle of a batch.
        print("copied", flush=True)
        time.sleep(600)
    return written

PostgresColdTier.put = put_then_stall
# The lock is renewed while the sweep lives; once it is killed, the lock outlives it by at
# most this, which leaves the checks below ample time on a slow machine.
context = WorkerContext.build(Settings(), lock_grace_seconds=5.0)
print(maintenance.demote(context), flush=True)
"""


def _cold_rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = sa.text("SELECT count(*) FROM sessions WHERE state = 'cold'")
        return int(conn.execute(query).scalar_one())


def test_a_sweep_killed_mid_batch_loses_nothing_and_the_next_run_finishes(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    two_hours_ago = ManualClock(utc_now() - timedelta(hours=2))
    seeding = RedisSessionStore.from_url(
        redis_url, cold_tier="postgres", database_url=database_url, clock=two_hours_ago
    )
    sessions = save_sessions(seeding, SESSIONS)
    seeding.close()
    env = {
        **os.environ,
        "HEARTH_REDIS_URL": redis_url,
        "HEARTH_DATABASE_URL": database_url,
        "HEARTH_SWEEP_BATCH_SIZE": str(BATCH),
        # Long enough that the budget never ends the sweep before the second batch, on
        # however slow a machine; the lock lives this plus the one second of grace.
        "HEARTH_SWEEP_TIME_BUDGET_SECONDS": "2",
    }
    engine = create_engine(database_url, pool_size=1)
    sweep = subprocess.Popen(
        [sys.executable, "-c", SWEEP], env=env, cwd=tmp_path, stdout=subprocess.PIPE
    )
    try:
        assert sweep.stdout is not None
        line = sweep.stdout.readline()
        assert line == b"copied\n", f"the sweep ended before it could be killed: {line!r}"
        sweep.kill()
        sweep.wait()
        copies = _cold_rows(engine)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        engine.dispose()
    assert sweep.returncode == -9
    assert copies == 2 * BATCH

    live = settings(redis_url=redis_url, database_url=database_url, sweep_batch_size=200)
    context = WorkerContext.build(live)
    try:
        # The dead sweep's lock still stands, so a new run does nothing...
        assert maintenance.demote(context)["status"] == "skipped"
        store = context.sessions
        tiers = [store.tier_of(s.tenant_id, s.id) for s in sessions]
        assert None not in tiers  # ...and not one session was lost, although the kill
        # ...the kill came after the second batch's copies were written: the first batch is
        # cold, the second still hot (the hot copy is the truth), the rest untouched.
        assert tiers.count(Tier.COLD) == BATCH
        # ...until the lock expires: then the next run finishes the job.
        deadline = time.monotonic() + 20
        while context.redis.exists(lock_key(jobs.DEMOTE)):
            assert time.monotonic() < deadline, "the dead sweep's lock never expired"
            time.sleep(0.05)
        result = maintenance.demote(context)
        assert result["status"] == "ok"
        assert result["complete"] is True
        assert all(store.tier_of(s.tenant_id, s.id) is Tier.COLD for s in sessions)
        stats = store.stats()
        assert stats.hot_sessions == 0
        assert stats.cold_sessions == SESSIONS
        again = store.get(sessions[0].tenant_id, sessions[0].id)
        assert again is not None
        assert again.user_channel_id == sessions[0].user_channel_id
    finally:
        context.close()

"""``hearth status``, ``hearth sweep``, ``hearth worker`` and ``hearth up`` on real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stores.common.clock import ManualClock, utc_now
from stores.sessions import Shard, Tier
from stores.sessions.redis import RedisSessionStore
from tests.integration.workers_support import save_sessions, settings
from workers import jobs, migrations
from workers.app import create_app
from workers.cli import app as cli
from workers.settings import get_settings

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def env(
    redis_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The CLI's environment: the test servers, and a data dir of its own."""
    values = {
        "HEARTH_REDIS_URL": redis_url,
        "HEARTH_DATABASE_URL": database_url,
        "HEARTH_DATA_DIR": str(tmp_path / "data"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


@pytest.fixture
def idle_store(redis_url: str, database_url: str) -> Iterator[RedisSessionStore]:
    """A store whose sessions were last active two hours ago (by the real clock)."""
    store = RedisSessionStore.from_url(
        redis_url,
        cold_tier="postgres",
        database_url=database_url,
        clock=ManualClock(utc_now() - timedelta(hours=2)),
    )
    yield store
    store.close()


def test_status_shows_tiers_jobs_schema_queues_and_redis_policy(
    env: dict[str, str], idle_store: RedisSessionStore
) -> None:
    save_sessions(idle_store, 3)
    sender = create_app(settings(redis_url=env["HEARTH_REDIS_URL"]))
    sender.send_task(jobs.TASK_NAMES[jobs.DEMOTE])  # no worker runs: it waits in its queue
    sender.close()

    result = CliRunner().invoke(cli, ["status", "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["schema"]["state"] == "current"
    assert report["sessions"]["hot_sessions"] == 3
    assert report["sessions"]["cold_sessions"] == 0
    assert set(report["jobs"]) == set(jobs.JOBS)
    assert report["queues"] == {"maintenance": 1, "providers": 0}
    assert report["redis"]["maxmemory_policy"]

    table = CliRunner().invoke(cli, ["status"])
    assert table.exit_code == 0, table.output
    assert "demote-idle-sessions" in table.output
    assert "policy" in table.output


def test_sweep_dry_run_counts_and_changes_nothing_then_the_sweep_moves(
    env: dict[str, str], idle_store: RedisSessionStore
) -> None:
    sessions = save_sessions(idle_store, 4)

    dry = CliRunner().invoke(cli, ["sweep", "demote", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would_demote=4" in dry.output
    assert all(idle_store.tier_of(s.tenant_id, s.id) is Tier.HOT for s in sessions)

    done = CliRunner().invoke(cli, ["sweep", "demote"])
    assert done.exit_code == 0, done.output
    assert "demoted=4" in done.output
    assert all(idle_store.tier_of(s.tenant_id, s.id) is Tier.COLD for s in sessions)

    purge = CliRunner().invoke(cli, ["sweep", "purge", "--dry-run"])
    assert purge.exit_code == 0, purge.output
    assert "would_purge=0" in purge.output


def test_worker_command_refuses_a_behind_schema(env: dict[str, str]) -> None:
    migrations.downgrade(env["HEARTH_DATABASE_URL"], "-1")

    result = CliRunner().invoke(cli, ["worker"])

    assert result.exit_code == 1
    assert "hearth db upgrade" in result.output


@pytest.mark.celery
@pytest.mark.slow
def test_up_on_configured_servers_shows_the_first_sweep_and_stops_on_ctrl_c(
    env: dict[str, str], tmp_path: Path
) -> None:
    up = subprocess.Popen(
        [str(Path(sys.executable).parent / "hearth"), "up", "--concurrency", "1"],
        env={**os.environ, **env, "COLUMNS": "200"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 60
        for line in up.stdout:
            lines.append(line)
            # With sharded sweeps, the dispatch comes first, then a line per shard.
            if "demote-idle-sessions" in line and "(startup)" in line and "demoted=" in line:
                break
            assert time.monotonic() < deadline, "".join(lines)
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    output = "".join(lines) + rest

    assert up.returncode == 0, output
    assert "servers configured" in output
    assert "demoted=0" in output
    assert "stopped" in output
    assert (tmp_path / "data" / "logs" / "worker.log").exists()


def test_sweep_runs_each_shard_in_turn_or_one_and_status_shows_each_shard(
    env: dict[str, str], idle_store: RedisSessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEARTH_SWEEP_SHARDS", "3")
    get_settings.cache_clear()
    sessions = [s for _ in range(6) for s in save_sessions(idle_store, 2)]

    one = CliRunner().invoke(cli, ["sweep", "demote", "--shard", "1"])
    assert one.exit_code == 0, one.output
    mine = [s for s in sessions if Shard(1, 3).owns(s.tenant_id)]
    assert f"shard 1/3: demoted={len(mine)}" in one.output
    assert "shard 0/3" not in one.output
    assert all(idle_store.tier_of(s.tenant_id, s.id) is Tier.COLD for s in mine)

    every = CliRunner().invoke(cli, ["sweep", "demote"])
    assert every.exit_code == 0, every.output
    lines = [line for line in every.output.splitlines() if line.startswith("shard ")]
    assert [line.split(":")[0] for line in lines] == ["shard 0/3", "shard 1/3", "shard 2/3"]
    assert f"demoted={len(sessions) - len(mine)} " in every.output  # the total line
    assert all(idle_store.tier_of(s.tenant_id, s.id) is Tier.COLD for s in sessions)

    wrong = CliRunner().invoke(cli, ["sweep", "purge", "--shard", "3"])
    assert wrong.exit_code == 1
    assert "shard must be 0 to 2" in wrong.output

    status = CliRunner().invoke(cli, ["status", "--json"])
    assert status.exit_code == 0, status.output
    shards = json.loads(status.output)["jobs"][jobs.DEMOTE]["shards"]
    assert [entry["shard"] for entry in shards] == [0, 1, 2]
    assert shards[1]["last_run"]["result"]["demoted"] == 0  # the second pass found none
    assert all(entry["last_run"]["status"] == "ok" for entry in shards)
    table = CliRunner().invoke(cli, ["status"], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "shard 2" in table.output

"""One name per job: the beat entry, the CLI command and ``hearth status`` use the job's name,
and show the Celery task it runs."""

from __future__ import annotations

import pytest
import redis
from typer.testing import CliRunner

import beat_schedule
from tests.integration.workers_support import settings
from workers import jobs
from workers.app import create_app
from workers.cli import app as cli
from workers.cli.status import job_runs

SWEEPS = (jobs.DEMOTE, jobs.PURGE)


@pytest.mark.parametrize("job", SWEEPS)
def test_each_sweep_command_is_named_after_its_beat_entry_and_names_its_task(job: str) -> None:
    schedule = beat_schedule.build_schedule(settings())
    shown = CliRunner().invoke(cli, ["sweep", job, "--help"], terminal_width=200)

    assert shown.exit_code == 0, shown.output
    assert job in schedule
    assert schedule[job]["task"] == jobs.TASK_NAMES[job]
    assert jobs.TASK_NAMES[job] in " ".join(shown.output.split())


def test_every_job_task_is_registered_under_its_name() -> None:
    app = create_app(settings())
    app.loader.import_default_modules()

    assert set(jobs.TASK_NAMES.values()) <= set(app.tasks)


@pytest.mark.redis
def test_status_shows_the_task_of_each_job(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        runs = job_runs(client)
    finally:
        client.close()

    assert set(runs) == set(jobs.JOBS)
    for job, entry in runs.items():
        assert entry["task"] == jobs.TASK_NAMES[job]

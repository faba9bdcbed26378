"""A worker that must not start says so in one sentence and exits with status 1."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests import services
from workers import schema_guard
from workers.migrations import ROOT

pytestmark = pytest.mark.postgres

UNREACHABLE = "postgresql://hearth@127.0.0.1:9/nowhere"


@pytest.fixture
def empty_database(pg_server: str) -> Iterator[str]:
    """A database no migration ever ran on."""
    name = services.unique_name("hearth_refuse")
    url = services.create_database(pg_server, name)
    try:
        yield url
    finally:
        services.drop_database(pg_server, name)


def start_worker(database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``celery -A workers.app worker`` on ``database_url``, as an operator would run it."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HEARTH_", "ANTHROPIC_", "OPENAI_"))
    }
    environ.update(
        HEARTH_DATABASE_URL=database_url,
        # Never reached: the worker refuses before it connects to a broker.
        HEARTH_BROKER_URL="redis://127.0.0.1:9/0",
        **env,
    )
    return subprocess.run(
        [
            sys.executable,
            # Celery warns about running as root, as the test machines do; not ours to show.
            "-W",
            "ignore:You're running the worker with superuser privileges",
            "-m",
            "celery",
            "-A",
            "workers.app",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines_of(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def test_a_schema_never_migrated_is_refused_in_one_line(empty_database: str) -> None:
    done = start_worker(empty_database)

    assert done.returncode == 1
    [line] = lines_of(done)
    assert "refusing to start: schema was never migrated" in line
    assert "hearth db upgrade" in line


def test_an_unreachable_database_is_refused_in_one_line() -> None:
    done = start_worker(UNREACHABLE, HEARTH_DATABASE_START_WAIT_SECONDS="0")

    assert done.returncode == 1
    [line] = lines_of(done)
    assert "refusing to start: database unreachable" in line
    assert "HEARTH_DATABASE_URL" in line


def test_an_unreachable_database_is_waited_for_then_refused() -> None:
    waits: list[str] = []

    status = schema_guard.check_reachable(
        UNREACHABLE, wait_seconds=0.1, on_wait=lambda s: waits.append(s.state.value)
    )

    assert waits == ["unreachable"]
    with pytest.raises(schema_guard.SchemaNotReadyError) as refused:
        schema_guard.enforce_reachable(status, waited=0.1)
    assert refused.value.code == 1


def test_schema_checks_leave_out_alembics_context_lines(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    status = schema_guard.check(database_url)

    assert status.state.value == "current"
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if m.startswith(("Context impl", "Will assume"))], messages

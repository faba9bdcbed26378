"""Settings from the environment and the CLI skeleton."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from stores.errors import InvalidInputError
from stores.postgres.engine import normalize_url
from workers.cli import app
from workers.settings import Settings


def test_settings_read_hearth_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_SESSION_HOT_TTL_SECONDS", "90")
    monkeypatch.setenv("HEARTH_EMBEDDING_DIMENSIONS", "384")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.hot_ttl == timedelta(seconds=90)
    assert s.embedding_dimensions == 384


def test_settings_refuse_a_dimension_above_the_index_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_EMBEDDING_DIMENSIONS", "4096")
    with pytest.raises(ValidationError, match="embedding_dimensions"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_settings_read_a_dotenv_file(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"  # type: ignore[operator]
    env.write_text("HEARTH_SESSION_MAX_AGE_SECONDS=120\n")
    s = Settings(_env_file=str(env))  # type: ignore[call-arg]
    assert s.max_age == timedelta(minutes=2)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/x",
            "postgresql+psycopg://postgres:@/postgres?host=/tmp/x",
        ),
    ],
)
def test_database_urls_get_the_psycopg3_driver(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_a_non_postgres_url_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="must start with postgresql://"):
        normalize_url("mysql://u@h/db")


def test_cli_help_and_version() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "db" in result.output
    version = runner.invoke(app, ["version"])
    assert version.exit_code == 0
    assert version.output.startswith("hearth ")
    db_help = runner.invoke(app, ["db", "--help"])
    for command in ("upgrade", "downgrade", "status", "check", "history"):
        assert command in db_help.output

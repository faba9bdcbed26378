"""The beat schedule: every periodic job, at the configured interval, expiring after it."""

from __future__ import annotations

from datetime import timedelta

import beat_schedule
from workers import jobs
from workers.app import celery_config, celery_url
from workers.settings import Settings


def _settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)


def test_every_job_runs_at_its_configured_interval_and_expires_after_it() -> None:
    settings = _settings(
        demote_interval_seconds=7,
        purge_interval_seconds=11,
        migration_check_interval_seconds=13,
        scenario_migration_interval_seconds=17,
        embedding_backfill_interval_seconds=19,
        tenant_index_interval_seconds=23,
    )
    schedule = beat_schedule.build_schedule(settings, include_backfill=True)
    expected = {
        jobs.DEMOTE: 7,
        jobs.PURGE: 11,
        jobs.SCHEMA_CHECK: 13,
        jobs.SCENARIO_MIGRATION: 17,
        jobs.EMBEDDING_BACKFILL: 19,
        jobs.TENANT_INDEXES: 23,
    }
    assert set(schedule) == set(expected)
    for job, seconds in expected.items():
        entry = schedule[job]
        assert entry["task"] == jobs.TASK_NAMES[job]
        assert entry["schedule"] == timedelta(seconds=seconds)
        assert entry["options"]["expires"] == seconds


def test_defaults_match_the_design() -> None:
    schedule = beat_schedule.build_schedule(_settings(), include_backfill=False)
    every = {job: entry["schedule"].total_seconds() for job, entry in schedule.items()}
    assert every == {
        jobs.DEMOTE: 60,
        jobs.PURGE: 3600,
        jobs.SCHEMA_CHECK: 600,
        jobs.SCENARIO_MIGRATION: 300,
        jobs.TENANT_INDEXES: 3600,
    }


def test_maintenance_and_provider_jobs_go_to_their_own_queues() -> None:
    schedule = beat_schedule.build_schedule(_settings(), include_backfill=True)
    assert schedule[jobs.EMBEDDING_BACKFILL]["options"]["queue"] == "providers"
    for job in (
        jobs.DEMOTE,
        jobs.PURGE,
        jobs.SCHEMA_CHECK,
        jobs.SCENARIO_MIGRATION,
        jobs.TENANT_INDEXES,
    ):
        assert schedule[job]["options"]["queue"] == "maintenance"


def test_the_app_is_json_only_utc_and_agrees_on_the_visibility_timeout() -> None:
    config = celery_config(
        _settings(redis_url="unix:///tmp/r.sock", broker_visibility_timeout_seconds=900)
    )
    assert config["broker_url"] == "redis+socket:///tmp/r.sock"
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert config["timezone"] == "UTC"
    assert config["enable_utc"]
    assert config["broker_transport_options"]["visibility_timeout"] == 900
    assert config["result_backend_transport_options"]["visibility_timeout"] == 900
    assert {q.name for q in config["task_queues"]} == {"maintenance", "providers"}
    assert set(config["beat_schedule"]) >= {jobs.DEMOTE, jobs.PURGE}


def test_redis_py_socket_urls_become_kombu_urls() -> None:
    assert celery_url("unix:///run/r.sock?db=3") == "redis+socket:///run/r.sock?virtual_host=3"
    assert celery_url("redis://h:6379/0") == "redis://h:6379/0"
    assert celery_url("amqp://guest@h//") == "amqp://guest@h//"

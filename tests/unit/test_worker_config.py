"""The Celery configuration follows the broker in use, and results get a database of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from workers.app import (
    ResultDatabaseError,
    celery_config,
    result_backend,
    task_queues,
    with_redis_db,
)
from workers.settings import Settings, describe_invalid
from workers.tasks.attempts import backoff_policy

AMQP = "amqp://guest:guest@rabbit:5672//"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_a_redis_broker_gets_its_visibility_timeout() -> None:
    s = _settings(redis_url="redis://r:6379/0", broker_visibility_timeout_seconds=900)
    config = celery_config(s)

    assert config["broker_transport_options"] == {"visibility_timeout": 900}
    assert config["result_backend_transport_options"] == {"visibility_timeout": 900}
    assert backoff_policy(s).visibility_timeout == 900
    assert config["task_time_limit"] < 900


def test_rabbitmq_gets_no_visibility_timeout_and_its_consumer_timeout_caps_countdowns() -> None:
    s = _settings(
        redis_url="redis://r:6379/0",
        broker_url=AMQP,
        broker_visibility_timeout_seconds=7200,
        rabbitmq_consumer_timeout_seconds=600,
    )
    config = celery_config(s)

    assert "visibility_timeout" not in config["broker_transport_options"]
    assert s.unacked_limit_seconds == 600
    policy = backoff_policy(s)
    assert policy.visibility_timeout == 600
    assert policy.max_countdown < 600
    assert config["task_time_limit"] < 600


def test_rabbitmq_consumer_timeout_defaults_to_the_servers_30_minutes() -> None:
    s = _settings(broker_url=AMQP)
    assert s.unacked_limit_seconds == 30 * 60


def test_results_default_to_a_database_of_their_own_that_expires() -> None:
    s = _settings(redis_url="redis://r:6379/0", result_expires_seconds=600)
    config = celery_config(s)

    assert config["result_backend"] == "redis://r:6379/1"
    assert config["result_expires"].total_seconds() == 600


def test_embedded_redis_results_use_another_database_on_the_same_socket() -> None:
    s = _settings(redis_url="unix:///tmp/r.sock?db=0", result_redis_db=2)
    assert result_backend(s) == "redis+socket:///tmp/r.sock?virtual_host=2"


def test_a_socket_url_keeps_its_form_with_another_database() -> None:
    assert with_redis_db("unix:///tmp/r.sock?db=0", 3) == "unix:///tmp/r.sock?db=3"
    assert with_redis_db("redis://h:6379/0", 3) == "redis://h:6379/3"


def test_results_never_share_the_sessions_database() -> None:
    with pytest.raises(ResultDatabaseError, match="HEARTH_RESULT_REDIS_DB"):
        result_backend(_settings(redis_url="redis://r:6379/1"))
    explicit = _settings(redis_url="redis://r:6379/1", result_backend="redis://r:6379/1")
    assert result_backend(explicit) == "redis://r:6379/1"


def test_each_queue_has_an_exchange_of_its_own() -> None:
    assert {(q.name, q.exchange.name, q.exchange.type) for q in task_queues()} == {
        ("maintenance", "maintenance", "direct"),
        ("providers", "providers", "direct"),
    }


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"redis_url": "redis+cluster://n1:6379,n2:6379"}, "HEARTH_REDIS_URL"),
        (
            {"redis_url": "redis://r:6379/0", "broker_url": "redis+cluster://n1:6379"},
            "HEARTH_BROKER_URL",
        ),
        (
            {"redis_url": "redis://r:6379/0", "result_backend": "rediss+cluster://n1:6379"},
            "HEARTH_RESULT_BACKEND",
        ),
    ],
)
def test_a_cluster_as_broker_or_result_backend_is_refused_by_name(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(ValidationError, match="Celery cannot use") as caught:
        _settings(**values)
    assert named in describe_invalid(caught.value)


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        ("redis://b:6379/0", "redis://b:6379/1"),
        (AMQP, "rpc://"),
    ],
)
def test_beside_a_cluster_hot_tier_results_go_beside_the_broker(broker: str, expected: str) -> None:
    s = _settings(redis_url="redis+cluster://n1:6379,n2:6379", broker_url=broker)
    assert celery_config(s)["broker_url"] == broker
    assert result_backend(s) == expected


def test_invalid_settings_end_a_start_with_one_sentence(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")},
        "HEARTH_REDIS_URL": "redis+cluster://127.0.0.1:1",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import workers.app"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "hearth cannot start: HEARTH_REDIS_URL names a Redis Cluster, which Celery cannot use "
        "as its broker: set HEARTH_BROKER_URL to a separate Redis server or RabbitMQ"
    ]

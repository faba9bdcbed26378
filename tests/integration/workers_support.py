"""Helpers for the worker tests: a real in-process Celery worker on a real broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import pytest
from celery.contrib.testing.worker import start_worker

from stores.sessions import Session, SessionStore
from workers.app import HearthCelery, celery_url, create_app
from workers.settings import Settings

BROKER_DB = 14
"""The broker and result backend use their own Redis database, so that a test flushing the
sessions database never removes the broker's queues under a running worker."""

BROKERS = [
    pytest.param("redis", id="redis-broker"),
    pytest.param(
        "rabbitmq",
        id="rabbitmq-broker",
        marks=pytest.mark.skipif(
            not os.environ.get("HEARTH_TEST_BROKER_URL"),
            reason="HEARTH_TEST_BROKER_URL is not set (CI sets it to its RabbitMQ)",
        ),
    ),
]


def with_db(redis_url: str, db: int) -> str:
    """The same Redis server as ``redis_url``, database ``db``, as a redis-py URL."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return urlunsplit(parts._replace(query=f"db={db}"))
    return urlunsplit(parts._replace(path=f"/{db}"))


def broker_settings(kind: str, redis_server_url: str) -> Settings:
    """Settings of a worker app on broker ``kind``, with no database (no start-up check)."""
    results = celery_url(with_db(redis_server_url, BROKER_DB))
    broker = results if kind == "redis" else os.environ["HEARTH_TEST_BROKER_URL"]
    return settings(broker_url=broker, result_backend=results)


def settings(**values: Any) -> Settings:
    """Settings from ``values`` only (no environment file)."""
    return Settings(_env_file=None, **values)


@contextmanager
def running_worker(
    app_settings: Settings, *, pool: str = "threads", concurrency: int = 2
) -> Iterator[HearthCelery]:
    """A real worker consuming every hearth queue in this process, stopped on exit."""
    app = create_app(app_settings)
    # The AMQP event loop sleeps until its next heartbeat tick before it notices a stop.
    app.conf.broker_heartbeat = 0
    if str(app.conf.broker_url).startswith("redis"):
        # The Redis transport's blocking poll (1 s by default) bounds how fast a worker stops.
        app.conf.broker_transport_options = {
            **app.conf.broker_transport_options,
            "polling_interval": 0.1,
        }
    app.control.purge()
    with start_worker(
        app,
        pool=pool,
        concurrency=concurrency,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ):
        yield app
    app.close()


def save_sessions(
    store: SessionStore, count: int, *, tenant_id: UUID | None = None, **fields: Any
) -> list[Session]:
    """Save ``count`` new sessions of one tenant and agent; returns the stored copies."""
    tenant = tenant_id or uuid4()
    agent = uuid4()
    return [
        store.save(
            Session(
                tenant_id=tenant,
                agent_id=agent,
                channel="web",
                user_channel_id=f"user-{i}-{uuid4().hex[:6]}",
                **fields,
            )
        )
        for i in range(count)
    ]


def send(app: HearthCelery, task: str, timeout: float = 30.0, **kwargs: Any) -> dict[str, Any]:
    """Send ``task`` through the broker and wait for its JSON result."""
    result: dict[str, Any] = app.send_task(task, kwargs=kwargs).get(timeout=timeout)
    return result

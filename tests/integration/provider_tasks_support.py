"""Settings for the provider task and backfill tests' real worker (``workers_support``).

The worker runs hearth's own app against the test Redis (broker and results in their own
database, as for the other worker tests), with the providers pointed at the fake API server
and a fast backoff.
"""

from __future__ import annotations

from typing import Any

from tests.fakes import FakeProviderServer
from tests.fakes.replies import FAKE_ANTHROPIC_MODEL
from tests.integration.workers_support import BROKER_DB, settings, with_db
from workers.app import celery_url
from workers.settings import Settings

RESULT_TIMEOUT = 15.0
"""Seconds a test waits for a task result; far above any scripted retry schedule."""


def task_settings(
    redis_server_url: str, server: FakeProviderServer | None, **overrides: Any
) -> Settings:
    """Worker settings: fast backoff (0.2 s first ceiling, 4 attempts), providers on ``server``.

    With ``server=None`` no provider is configured at all.
    """
    broker = celery_url(with_db(redis_server_url, BROKER_DB))
    values: dict[str, Any] = {
        "redis_url": redis_server_url,
        "broker_url": broker,
        "result_backend": broker,
        "provider_backoff_base_seconds": 0.2,
        "provider_backoff_max_seconds": 1.0,
        "provider_max_attempts": 4,
        "provider_task_deadline_seconds": 30.0,
        "provider_timeout_seconds": 5.0,
    }
    if server is not None:
        values.update(
            llm_provider="anthropic",
            llm_model=FAKE_ANTHROPIC_MODEL,
            anthropic_api_key="sk-ant-test-key",
            anthropic_base_url=server.anthropic_base_url,
            embedding_provider="openai",
            embedding_model="text-embedding-3-small",
            openai_api_key="sk-test-key",
            openai_base_url=server.openai_base_url,
        )
    values.update(overrides)
    return settings(**values)

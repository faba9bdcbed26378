"""The worker context builds each store once per process and closes them with itself."""

from __future__ import annotations

import pytest

from stores.memory.postgres import PostgresMemoryStore
from tests.integration.workers_support import settings
from workers.context import NotConfiguredError, WorkerContext

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def test_the_memory_store_is_built_once_and_closed_with_the_context(
    redis_url: str, database_url: str
) -> None:
    context = WorkerContext.build(settings(redis_url=redis_url, database_url=database_url))
    try:
        memory = context.memory
        assert isinstance(memory, PostgresMemoryStore)
        assert context.memory is memory
        closed: list[bool] = []
        original_close = memory.close

        def close() -> None:
            closed.append(True)
            original_close()

        memory.close = close  # type: ignore[method-assign]
    finally:
        context.close()
    assert closed == [True]


def test_a_memory_store_needs_a_database(redis_url: str) -> None:
    context = WorkerContext.build(settings(redis_url=redis_url))
    try:
        with pytest.raises(NotConfiguredError, match="HEARTH_DATABASE_URL"):
            _ = context.memory
    finally:
        context.close()

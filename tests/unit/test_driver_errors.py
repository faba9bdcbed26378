"""The driver-error policies and the edge that applies them to every public store method."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import redis

from stores.audit.postgres import PostgresAuditStore
from stores.config.postgres import PostgresConfigStore
from stores.driver_errors import TranslatedEdge, redis_translated, translated
from stores.errors import StoreError, StoreUnavailableError
from stores.memory.postgres import PostgresMemoryStore
from stores.profiles.postgres import PostgresProfileStore
from stores.sessions.cold_postgres import PostgresColdTier
from stores.sessions.redis import RedisSessionStore


class _Interface:
    def inherited(self) -> None:
        raise redis.ConnectionError("refused")


class _RedisThing(_Interface, TranslatedEdge):
    _driver_errors = redis_translated

    def plain(self) -> None:
        raise redis.ResponseError("WRONGTYPE Operation against a key")

    def busy(self) -> None:
        raise redis.ResponseError("LOADING Redis is loading the dataset in memory")

    def rows(self) -> Iterator[int]:
        yield 1
        raise redis.TimeoutError("timed out")

    def _private(self) -> None:
        raise redis.ConnectionError("refused")

    @classmethod
    def build(cls) -> _RedisThing:
        raise redis.ConnectionError("refused")

    @contextmanager
    def held(self) -> Iterator[int]:
        yield 1
        raise redis.ConnectionError("lost while settling")

    @property
    def size(self) -> int:
        raise redis.ConnectionError("refused")


class _PostgresThing(TranslatedEdge):
    _driver_errors = translated

    def lost(self) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")


def test_the_edge_translates_own_inherited_and_generator_methods() -> None:
    thing = _RedisThing()
    with pytest.raises(StoreError) as plain:
        thing.plain()
    assert type(plain.value) is StoreError
    assert isinstance(plain.value.__cause__, redis.ResponseError)
    with pytest.raises(StoreUnavailableError):
        thing.busy()
    with pytest.raises(StoreUnavailableError):
        thing.inherited()
    rows = thing.rows()
    assert next(rows) == 1
    with pytest.raises(StoreUnavailableError):
        next(rows)
    # Private helpers are left alone: their public caller translates.
    with pytest.raises(redis.ConnectionError):
        thing._private()
    with pytest.raises(StoreUnavailableError, match="database unavailable"):
        _PostgresThing().lost()


def test_the_edge_covers_classmethods_and_a_context_managers_whole_block() -> None:
    with pytest.raises(StoreUnavailableError):
        _RedisThing.build()
    thing = _RedisThing()
    seen = []
    with pytest.raises(StoreUnavailableError, match="lost while settling"), thing.held() as one:
        seen.append(one)
    assert seen == [1]
    with pytest.raises(StoreUnavailableError, match="in the block"), thing.held():
        raise redis.ConnectionError("in the block")
    # Properties translate for themselves (documented): the edge leaves them alone.
    with pytest.raises(redis.ConnectionError):
        _ = thing.size


def test_a_doing_phrase_leads_the_message_and_keeps_the_kind() -> None:
    expected = r"^cannot take the lock: Redis unavailable"
    with (
        pytest.raises(StoreUnavailableError, match=expected),
        redis_translated("cannot take the lock"),
    ):
        raise redis.ConnectionError("refused")


@pytest.mark.parametrize(
    ("store", "policy"),
    [
        (PostgresConfigStore, translated),
        (PostgresMemoryStore, translated),
        (PostgresProfileStore, translated),
        (PostgresAuditStore, translated),
        (PostgresColdTier, translated),
        (RedisSessionStore, redis_translated),
    ],
)
def test_every_public_method_of_every_driver_store_is_at_the_edge(
    store: type, policy: object
) -> None:
    methods = [
        name
        for name in dir(store)
        if not name.startswith("_") and inspect.isfunction(inspect.getattr_static(store, name))
    ]
    assert methods
    outside = [m for m in methods if getattr(getattr(store, m), "__edge__", None) is not policy]
    assert outside == []

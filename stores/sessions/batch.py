"""Commands over many tenants in one round trip, that on a Redis Cluster outlive a node.

A sweep reads and writes the keys of many tenants and registry buckets at once. On one
Redis that is a pipeline, and a failure fails it all: the store is down. On a cluster a
pipeline is split by node, and redis-py fails the whole of it when one node does not answer;
a master that is down would then stop every sweep, for the tenants of the other masters
too. :class:`Batch` sends one pipeline per node instead, and puts the error of a node that
failed in the place of each of its commands, so the sweep skips those keys and does the
rest. Only when every node failed does it raise.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import AskError, RedisClusterException, TryAgainError

from stores.driver_errors import translate_redis
from stores.errors import StoreError, StoreUnavailableError
from stores.sessions.clients import Client


class Batch:
    """Commands queued by the key that routes them; :meth:`execute` gives their replies in
    order, with a store error in the place of each command whose node failed."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._calls: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []

    def add(self, key: str, command: str, *args: Any, **options: Any) -> None:
        """Queue pipeline method ``command`` (``key`` is the key it reads or writes)."""
        self._calls.append((key, command, args, options))

    def __len__(self) -> int:
        return len(self._calls)

    def execute(self, keep: tuple[type[BaseException], ...] = ()) -> list[Any]:
        """Send the commands; their replies in order, with a :class:`StoreUnavailableError`
        in the place of each command of a cluster node that failed (see :func:`failed`),
        and command errors of the types in ``keep`` in place too.

        Raises:
            StoreError: for any other command error; on one Redis, when the pipeline fails;
                on a cluster, when every node that was sent commands failed.
        """
        return raise_errors(self._send(), keep)

    def _send(self) -> list[Any]:
        if not self._calls:
            return []
        if not isinstance(self.client, RedisCluster):
            try:
                pipe = self.client.pipeline(transaction=False)
                for _, command, args, options in self._calls:
                    getattr(pipe, command)(*args, **options)
                return list(pipe.execute(raise_on_error=False))
            except redis.RedisError as exc:
                raise translate_redis(exc) from exc
        by_node: dict[str, list[int]] = {}
        for i, (key, *_) in enumerate(self._calls):
            by_node.setdefault(self._node(key), []).append(i)
        replies: list[Any] = [None] * len(self._calls)
        failures = 0
        for name, places in by_node.items():
            # The node's own client: redis-py's cluster pipeline sends a script call to
            # the wrong node once a node failed, and fails every node's share with it.
            node = self.client.get_node(node_name=name)  # type: ignore[no-untyped-call]
            try:
                if node is None or node.redis_connection is None:
                    raise redis.ConnectionError(f"no master serves {name}")
                pipe = node.redis_connection.pipeline(transaction=False)
                for i in places:
                    _, command, args, options = self._calls[i]
                    getattr(pipe, command)(*args, **options)
                answers = pipe.execute(raise_on_error=False)
            except redis.RedisError as exc:
                failures += 1
                for i in places:
                    replies[i] = _unavailable(exc)
                continue
            for i, reply in zip(places, answers, strict=True):
                # A slot that moved (MOVED), is moving (ASK) or is split by a move
                # (TRYAGAIN): the cluster client follows it for this command alone.
                replies[i] = self._one(i) if isinstance(reply, _REDIRECTS) else reply
        if failures == len(by_node):
            raise next(r for r in replies if isinstance(r, StoreError))
        return replies

    def _one(self, i: int) -> Any:
        _, command, args, options = self._calls[i]
        try:
            return getattr(self.client, command)(*args, **options)
        except (redis.ConnectionError, redis.TimeoutError, RedisClusterException) as exc:
            return _unavailable(exc)
        except redis.RedisError as exc:
            return exc

    def _node(self, key: str) -> str:
        assert isinstance(self.client, RedisCluster)
        try:
            return str(self.client.get_node_from_key(key).name)  # type: ignore[no-untyped-call]
        except (redis.RedisError, RedisClusterException):
            # A slot without a master: its commands go on their own, and fail on their own.
            return f"slot {self.client.keyslot(key)}"  # type: ignore[no-untyped-call]


_REDIRECTS = (AskError, TryAgainError)


def _unavailable(exc: BaseException) -> StoreUnavailableError:
    error = StoreUnavailableError(f"Redis Cluster node unavailable: {exc}")
    error.__cause__ = exc
    return error


def raise_errors(replies: list[Any], keep: tuple[type[BaseException], ...] = ()) -> list[Any]:
    """``replies``, unless one is an error other than a failed node's (see :func:`failed`)
    or of the types in ``keep``: then that error is raised, a driver's as a store error."""
    for reply in replies:
        if isinstance(reply, Exception) and not isinstance(reply, (StoreError, *keep)):
            if isinstance(reply, redis.RedisError):
                raise translate_redis(reply) from reply
            raise reply
    return replies


def failed(reply: Any) -> bool:
    """Whether a reply of :meth:`Batch.execute` is the error of a node that failed."""
    return isinstance(reply, StoreError)

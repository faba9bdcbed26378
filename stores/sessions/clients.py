"""redis-py clients from URLs: one Redis, or a Redis Cluster.

``redis://``, ``rediss://`` and ``unix://`` name one server; ``redis+cluster://host:port
[,host:port...]`` (the scheme the ``limits`` library uses) names a cluster by some of its
nodes, and ``rediss+cluster://`` the same over TLS. Both get the same timeouts and retry
policy: a retried call is safe, since the session scripts recognise a write that already
landed.
"""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from stores.errors import InvalidInputError

Client: TypeAlias = redis.Redis | RedisCluster
"""A client of one Redis or of a Redis Cluster; the session store and the worker
bookkeeping take either."""

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""URL schemes that name a Redis Cluster."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)


def from_url(url: str, *, socket_timeout: float = 5.0) -> Client:
    """A client on the server or cluster of ``url``."""
    if not is_cluster_url(url):
        return redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=_retry(),
            health_check_interval=30,
        )
    return cluster_from_url(url, socket_timeout=socket_timeout)


def cluster_from_url(url: str, *, socket_timeout: float = 5.0) -> RedisCluster:
    """A cluster client on the nodes of a ``redis+cluster://`` URL (every host:port listed
    is a startup node; the client learns the others from them)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in CLUSTER_SCHEMES:
        raise InvalidInputError(f"not a Redis Cluster URL: {scheme}://...", field="url")
    if parts.path not in ("", "/", "/0"):
        raise InvalidInputError("a Redis Cluster has database 0 only", field="url")
    credentials, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for address in hosts.split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            raise InvalidInputError(
                f"a Redis Cluster URL lists host:port pairs; got {address!r}", field="url"
            )
        nodes.append(ClusterNode(host.strip("[]"), int(port)))  # type: ignore[no-untyped-call]
    options: dict[str, Any] = {}
    if credentials:
        user, has_password, password = credentials.partition(":")
        if has_password:
            options["username"] = unquote(user) or None
            options["password"] = unquote(password)
        else:
            options["password"] = unquote(user)
    if scheme == "rediss+cluster":
        options["ssl"] = True
    return RedisCluster(
        startup_nodes=nodes,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=_retry(),
        # A master that is down fails its own slots only: the client must still start, and
        # serve the others, when some slots have no master.
        require_full_coverage=False,
        health_check_interval=30,
        **options,
    )

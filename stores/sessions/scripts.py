"""The Lua scripts of the Redis session store, and Redis error translation.

Each script is a ``lua/<name>.lua`` file whose header comment documents its KEYS and ARGV;
``lua/lib.lua`` holds helpers prepended to each. They are registered once per client:
redis-py sends EVALSHA and loads a script only when the server does not know it yet.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

from stores.errors import StoreError, StoreUnavailableError

NAMES = (
    "get",
    "save",
    "promote",
    "idle",
    "demote",
    "evict",
    "delete",
    "purge",
    "fetch",
    "quarantine",
    "fence",
)

# Server replies meaning "not now" rather than "wrong request".
_BUSY_REPLY = re.compile(r"\b(OOM|READONLY|MASTERDOWN|LOADING|CLUSTERDOWN|TRYAGAIN|BUSY)\b")


@cache
def source(name: str) -> str:
    """The full text of script ``name``, helpers included."""
    folder = resources.files("stores.sessions") / "lua"
    return (folder / "lib.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


def register(client: Any) -> dict[str, Script]:
    """Register every script on ``client``."""
    return {name: client.register_script(source(name)) for name in NAMES}


def translate(exc: redis.RedisError) -> StoreError:
    """The store error for a redis-py error (the caller raises it from ``exc``)."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return StoreUnavailableError(f"Redis unavailable: {exc}")
    if isinstance(exc, redis.ResponseError) and _BUSY_REPLY.search(str(exc)):
        return StoreUnavailableError(f"Redis cannot serve the request now: {exc}")
    return StoreError(f"Redis error: {exc}")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn redis-py errors raised inside the block into store errors, cause kept."""
    try:
        yield
    except redis.RedisError as exc:
        raise translate(exc) from exc

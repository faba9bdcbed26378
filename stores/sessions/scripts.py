"""The Lua scripts of the Redis session store, and Redis error translation.

Each script is a ``lua/<name>.lua`` file whose header comment documents its KEYS and ARGV;
``lua/lib.lua`` holds helpers prepended to each. They are registered once per client and
sent as EVALSHA; a server that does not know a script yet (a new or restarted node) gets
the same call as EVAL, which runs it and caches it there. Nothing is loaded on every node at
once: on a cluster, a master that is down would fail that for the tenants of the others.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any

from redis.commands.core import Script
from redis.exceptions import NoScriptError

from stores.sessions import keys

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


@dataclass(frozen=True)
class SaveArgs:
    """The ARGV of ``save.lua``, by name and in its order (its header says what each
    means): built in one place, changed with ``dataclasses.replace``."""

    session_id: str
    expected: str
    document: bytes
    version: int
    created_us: int
    now_us: int | str
    cutoff_us: int
    index_suffixes: str
    row: str
    target: str
    call: str
    fence_token: bytes | str = ""
    incarnation: str = ""
    new_incarnation: str = ""
    fresh_fence: str = ""

    def argv(self) -> list[Any]:
        """The arguments as the script takes them."""
        return [getattr(self, f.name) for f in fields(self)]


@cache
def source(name: str) -> str:
    """The full text of script ``name``, helpers included."""
    folder = resources.files("stores.sessions") / "lua"
    lib, own = (folder / "lib.lua").read_text(), (folder / f"{name}.lua").read_text()
    return "\n".join((keys.lua_constants(), lib, own))


def register(client: Any) -> dict[str, Script]:
    """Register every script on ``client``."""
    return {name: client.register_script(source(name)) for name in NAMES}


def run(client: Any, script: Script, keys: list[str], args: list[Any]) -> Any:
    """Run ``script`` on the node serving ``keys`` (see the module docstring)."""
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return client.eval(script.script, len(keys), *keys, *args)


def evalsha_command(script: Script, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
    """The EVALSHA command of ``script``, for ``execute_command`` on a pipeline (a cluster
    pipeline has no ``evalsha`` method of its own)."""
    return ("EVALSHA", script.sha, len(keys), *keys, *args)


def eval_command(script: Script, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
    """The EVAL command of ``script``, for a server that answered NOSCRIPT."""
    return ("EVAL", script.script, len(keys), *keys, *args)

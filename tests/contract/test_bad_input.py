"""Every public method of every store backend, called with wrong values, differentially.

The methods are found by introspection, so a method added later is covered without editing
this file. Each generated call makes one or more arguments wrong (see
:mod:`tests.contract.bad_values`) and leaves the others right, against stores seeded alike
(:mod:`tests.contract.bad_worlds`). For every call:

- only :class:`~stores.errors.StoreError` subclasses come out;
- every backend of the store gives the same outcome (the same error class, or equal
  results);
- nothing was written: each backend's snapshot (PostgreSQL row counts and row digests per
  table, Redis key count and a digest of every value, or an in-memory backend's contents)
  is the same after the call as before.

The fixed profile runs by default; ``-m deep`` runs the same checks with many more cases.
"""

from __future__ import annotations

import copy
import inspect
import typing
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from stores.audit import InMemoryAuditStore, PostgresAuditStore
from stores.common.clock import ManualClock
from stores.common.pagination import Page
from stores.config import InMemoryConfigStore, PostgresConfigStore
from stores.errors import InvalidInputError, StoreError
from stores.memory import InMemoryMemoryStore, PostgresMemoryStore
from stores.profiles import InMemoryProfileStore, PostgresProfileStore
from stores.sessions import InMemorySessionStore, RedisSessionStore, Session
from tests import services
from tests.contract.bad_values import (
    UTC_NOW,
    Kind,
    bad_model,
    bad_values,
    classify,
    describe_call,
)
from tests.contract.bad_worlds import DIMS, TENANTS, World, build_worlds, ids, vec

BACKEND_CLASSES: dict[str, list[type]] = {
    "audit": [InMemoryAuditStore, PostgresAuditStore],
    "config": [InMemoryConfigStore, PostgresConfigStore],
    "memory": [InMemoryMemoryStore, PostgresMemoryStore],
    "profiles": [InMemoryProfileStore, PostgresProfileStore],
    "sessions": [InMemorySessionStore, RedisSessionStore],
}

EXCLUDED = {
    "close": "releases the store's connections; it takes no argument to get wrong",
}
"""Public methods left out, with why. Methods taking no argument (``stats``, the counts)
and constructors (classmethods such as ``from_url``) are left out as well: the first have
nothing to get wrong, the second build a store rather than use one."""

FIXED = settings(
    max_examples=6,
    derandomize=True,
    database=None,
    deadline=None,
    # The explain phase replays a failure many times over, and reports nothing a failing
    # call's message does not already say.
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DEEP = settings(FIXED, max_examples=300)


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    found = {}
    for name, value in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name in EXCLUDED:
            continue
        signature = inspect.signature(value)
        if len(signature.parameters) > 1:
            found[name] = signature
    return found


def _cases() -> list[tuple[str, str]]:
    cases = set()
    for store, classes in BACKEND_CLASSES.items():
        for cls in classes:
            cases.update((store, name) for name in _public_methods(cls))
    return sorted(cases)


CASES = [
    pytest.param(store, method, id=f"{store}.{method}", marks=_marks)
    for store, method in _cases()
    for _marks in [
        [pytest.mark.postgres, pytest.mark.redis] if store == "sessions" else [pytest.mark.postgres]
    ]
]


def _hints(store: str, method: str) -> dict[str, Any]:
    """The resolved annotations of ``method``, from the first class that can resolve them."""
    for cls in BACKEND_CLASSES[store]:
        for klass in cls.__mro__:
            func = vars(klass).get(method)
            if func is None:
                continue
            try:
                return typing.get_type_hints(func)
            except NameError:
                continue
    raise AssertionError(f"cannot resolve the annotations of {store}.{method}")


def _right(world: World, param: inspect.Parameter, kind: Kind) -> Any:
    """A right value for ``param``."""
    if param.name in world.plausible:
        return world.plausible[param.name]
    if kind.name == "model":
        return world.model_of(kind.target)
    if kind.name == "models":
        return [world.model_of(kind.target)]
    if param.default is not inspect.Parameter.empty:
        return param.default
    simple = {"text": "x", "int": 1, "float": 0.5, "bool": False, "json": {}}
    if kind.name in simple:
        return simple[kind.name]
    if kind.name == "datetime":
        return UTC_NOW
    if kind.name == "vector":
        return vec(1.0)
    if kind.name == "enum":
        return next(iter(kind.target))
    return None


def _wrong(world: World, param: inspect.Parameter, kind: Kind) -> st.SearchStrategy[Any]:
    if kind.name in ("model", "models"):
        good = world.model_of(kind.target) or world.plausible.get(param.name)
        others = [m for m in world.models if type(m) is not kind.target][:2]
        assert good is not None, f"no seeded {kind.target.__name__}"
        one = bad_model(kind.target, good, others, dimensions=DIMS)
        if kind.name == "model":
            return one
        wrong_items = st.lists(one, min_size=1, max_size=2).map(lambda xs: [good, *xs])
        return st.one_of(st.sampled_from([None, "x", 0, ["x"], [None], good]), wrong_items)
    foreign = world.foreign.get(param.name, []) if kind.name == "id" else []
    return bad_values(kind, dimensions=DIMS, foreign=foreign, in_model=False)


def _normalize(value: Any) -> Any:
    if isinstance(value, Page):
        return ("page", _normalize(value.items), value.next_cursor)
    if isinstance(value, BaseModel):
        return _normalize(value.model_dump())
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def check_call(world: World, store: str, method: str, data: st.DataObject) -> None:
    """Draw one call of ``method`` with at least one wrong argument and check every backend."""
    owner = next(s for s in world.backends.values() if hasattr(s, method))
    params = [
        p
        for p in list(inspect.signature(getattr(owner, method)).parameters.values())
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    hints = _hints(store, method)
    kinds = {p.name: classify(hints.get(p.name, Any)) for p in params}
    forced = data.draw(st.sampled_from([p.name for p in params]), label="wrong")
    kwargs: dict[str, Any] = {}
    for p in params:
        # Every parameter draws the same choices whether it ends up wrong or not, so that
        # the shape of the generated data never depends on an earlier choice.
        also = data.draw(st.integers(0, 3), label=f"{p.name}?") == 0
        candidate = data.draw(_wrong(world, p, kinds[p.name]), label=p.name)
        wrong = p.name == forced or also
        kwargs[p.name] = candidate if wrong else _right(world, p, kinds[p.name])
    call = describe_call(method, kwargs)
    outcomes: dict[str, Any] = {}
    for backend, instance in world.backends.items():
        if not hasattr(instance, method):
            continue
        snapshot = world.snapshots[backend]
        # Nothing is ever written, so the state after one call is the state before the next.
        before = world.last.get(backend) or snapshot()
        try:
            result = getattr(instance, method)(**copy.deepcopy(kwargs))
        except StoreError as exc:
            outcomes[backend] = ("raised", type(exc).__name__)
        except Exception as exc:
            # An AssertionError, not pytest.fail: hypothesis shrinks only Exceptions.
            raise AssertionError(
                f"{backend}: {call} raised {type(exc).__name__}: {exc}"[:2000]
            ) from exc
        else:
            outcomes[backend] = ("returned", _normalize(result))
        world.last[backend] = after = snapshot()
        assert after == before, f"{backend}: {call} wrote to the store"
    distinct = {repr(o) for o in outcomes.values()}
    assert len(distinct) == 1, f"backends disagree on {call}: {outcomes}"[:4000]


@pytest.fixture(scope="module")
def worlds(pg_server: str, pg_template: str, redis_server_url: str) -> Iterator[dict[str, World]]:
    import redis

    client = redis.Redis.from_url(redis_server_url)
    try:
        client.flushdb()
    finally:
        client.close()
    name = services.unique_name("hearth_bad")
    url = services.create_database(pg_server, name, template=pg_template)
    clock = ManualClock(UTC_NOW)
    try:
        with build_worlds(url, redis_server_url, clock) as built:
            yield built
    finally:
        services.drop_database(pg_server, name)


T0 = TENANTS[0]
EXAMPLES = [
    ("config", "vector_search_rules", (T0, ids(0, 20), 7), "embedding"),
    ("config", "set_rule_embedding", (T0, ids(0, 21), UUID(int=7), "m"), "embedding"),
    ("memory", "vector_search_episodes", (T0, ids(0, 1), UUID(int=7)), "embedding"),
    ("memory", "set_episode_embedding", (T0, ids(0, 10), 7, "m"), "embedding"),
    ("config", "create_agent", (None,), "agent"),
    ("config", "update_rule", (None,), "rule"),
    ("memory", "add_episodes", (None,), "episodes"),
    ("memory", "add_episodes", (["x"],), "episodes"),
    ("memory", "add_relationship", (None,), "relationship"),
    ("profiles", "create_profile", (None,), "profile"),
    ("audit", "record_turn", (None,), "turn"),
    ("sessions", "find_by_scenario_step", (T0, ids(0, 22), 2**40, None), "scenario_version"),
    ("sessions", "save", ("version", "1"), "version"),
    ("sessions", "save", ("version", 1.0), "version"),
]
"""Wrong arguments named in the issue that asked for this suite, checked one by one."""


@pytest.mark.parametrize(
    ("store", "method", "args", "field"),
    [
        pytest.param(
            *e, id=f"{e[0]}.{e[1]}-{e[3]}-{i}", marks=[pytest.mark.postgres, pytest.mark.redis]
        )
        for i, e in enumerate(EXAMPLES)
    ],
)
def test_each_backend_names_the_wrong_argument(
    worlds: dict[str, World], store: str, method: str, args: tuple[Any, ...], field: str
) -> None:
    world = worlds[store]
    if method == "save":
        session = world.model_of(Session)
        assert session is not None
        args = (session.model_copy(update={args[0]: args[1]}),)
    for backend, instance in world.backends.items():
        before = world.snapshots[backend]()
        with pytest.raises(InvalidInputError) as info:
            getattr(instance, method)(*args)
        assert info.value.field == field, backend
        assert world.snapshots[backend]() == before, backend


@pytest.mark.parametrize(("store", "method"), CASES)
@FIXED
@given(data=st.data())
def test_wrong_arguments_are_refused_alike(
    worlds: dict[str, World], store: str, method: str, data: st.DataObject
) -> None:
    check_call(worlds[store], store, method, data)


@pytest.mark.deep
@pytest.mark.parametrize(("store", "method"), CASES)
@DEEP
@given(data=st.data())
def test_wrong_arguments_are_refused_alike_deep(
    worlds: dict[str, World], store: str, method: str, data: st.DataObject
) -> None:
    check_call(worlds[store], store, method, data)

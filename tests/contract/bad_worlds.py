"""The seeded stores the bad-input suite calls: every backend of each store holds the same
items under the same ids for two tenants, and can say what it holds (a snapshot) so that a
call can be shown to have written nothing."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel

from stores.audit import AuditEvent, InMemoryAuditStore, PostgresAuditStore, TurnRecord
from stores.common.clock import ManualClock
from stores.config import (
    Agent,
    InMemoryConfigStore,
    MigrationPlan,
    PostgresConfigStore,
    Rule,
    Scenario,
    ScenarioStep,
    Template,
    ToolActivation,
    Variable,
)
from stores.memory import Entity, Episode, InMemoryMemoryStore, PostgresMemoryStore, Relationship
from stores.postgres.engine import create_engine
from stores.profiles import (
    ChannelIdentity,
    CustomerProfile,
    InMemoryProfileStore,
    PostgresProfileStore,
    ProfileAsset,
)
from stores.sessions import InMemorySessionStore, PendingMigration, RedisSessionStore, Session
from tests.contract.bad_values import UTC_NOW

DIMS = 1536
TENANTS = (UUID(int=1), UUID(int=2))
"""The tenant the calls name, and the other tenant whose ids they must not reach."""


def vec(first: float) -> list[float]:
    return [first, *([0.0] * (DIMS - 1))]


def ids(tenant_index: int, base: int) -> UUID:
    """The id of item ``base`` of tenant ``tenant_index``."""
    return UUID(int=1000 * (tenant_index + 1) + base)


@dataclass
class World:
    """One store's backends, all seeded alike, and the values a call may take."""

    backends: dict[str, Any]
    snapshots: dict[str, Callable[[], str]]
    plausible: dict[str, Any]
    """A right value per parameter name (for the tenant the calls name)."""
    foreign: dict[str, list[Any]]
    """Per parameter name, well-formed ids the named tenant does not own."""
    models: list[BaseModel] = field(default_factory=list)
    """One stored item per model class, for the right value of a model parameter."""
    last: dict[str, str] = field(default_factory=dict)
    """Each backend's latest snapshot."""

    def model_of(self, cls: type[BaseModel]) -> BaseModel | None:
        return next((m for m in self.models if type(m) is cls), None)


def memory_state(store: Any) -> str:
    """A digest of an in-memory backend's contents (locks and the clock left out)."""
    parts = []
    for name, value in sorted(vars(store).items()):
        if callable(value) or isinstance(value, type(threading.RLock())):
            continue
        if "lock" in name or name == "_clock":
            continue
        parts.append(f"{name}={value!r}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def postgres_state(engine: sa.Engine) -> Callable[[], str]:
    """A snapshot of every table: its row count and a digest of its rows."""
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ).scalars()
        parts = [
            f"SELECT '{t}', count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), ''))"
            f' FROM "{t}" r'
            for t in tables
        ]
    sql = sa.text(" UNION ALL ".join(parts))

    def snapshot() -> str:
        with engine.connect() as conn:
            return repr(sorted(tuple(row) for row in conn.execute(sql)))

    return snapshot


def redis_state(client: Any) -> str:
    """The key count and a digest of every key's value."""
    keys = sorted(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    digest = hashlib.sha256()
    for key, value in zip(keys, pipe.execute(), strict=True):
        digest.update(key + b"=" + (value or b""))
    return f"{len(keys)}:{digest.hexdigest()}"


def _memory(seed: Callable[[Any, int], None], stores: dict[str, Any]) -> None:
    for store in stores.values():
        for t in range(2):
            seed(store, t)


def seed_memory(store: Any, t: int) -> None:
    tenant, agent = TENANTS[t], ids(t, 1)
    store.add_episode(
        Episode(
            id=ids(t, 10),
            tenant_id=tenant,
            agent_id=agent,
            customer_profile_id=ids(t, 2),
            session_id=ids(t, 3),
            group_id="g",
            content="likes tea",
            embedding=vec(1.0),
            embedding_model="m",
        )
    )
    for n, name in ((11, "ann"), (12, "bob")):
        store.add_entity(
            Entity(
                id=ids(t, n),
                tenant_id=tenant,
                agent_id=agent,
                customer_profile_id=ids(t, 2),
                name=name,
                entity_type="person",
            )
        )
    store.add_relationship(
        Relationship(
            id=ids(t, 13),
            tenant_id=tenant,
            source_entity_id=ids(t, 11),
            target_entity_id=ids(t, 12),
            relationship_type="knows",
        )
    )


def seed_config(store: Any, t: int) -> None:
    tenant = TENANTS[t]
    agent = store.create_agent(Agent(id=ids(t, 20), tenant_id=tenant, name="support"))
    store.create_rule(
        Rule(
            id=ids(t, 21),
            tenant_id=tenant,
            agent_id=agent.id,
            name="r",
            condition_text="c",
            action_type="say",
            embedding=vec(1.0),
            embedding_model="m",
        )
    )
    scenario = store.create_scenario(
        Scenario(
            id=ids(t, 22),
            tenant_id=tenant,
            agent_id=agent.id,
            name="s",
            steps=[ScenarioStep(id="a", transitions=["b"]), ScenarioStep(id="b")],
            embedding=vec(1.0),
            embedding_model="m",
        )
    )
    store.update_scenario(scenario.model_copy(update={"name": "s2"}))
    store.create_template(
        Template(id=ids(t, 23), tenant_id=tenant, agent_id=agent.id, name="t", content="hi")
    )
    store.create_variable(Variable(id=ids(t, 24), tenant_id=tenant, agent_id=agent.id, name="v"))
    store.create_tool_activation(
        ToolActivation(id=ids(t, 25), tenant_id=tenant, agent_id=agent.id, tool_id="tool")
    )
    store.create_migration_plan(
        MigrationPlan(
            id=ids(t, 26), tenant_id=tenant, scenario_id=scenario.id, from_version=1, to_version=2
        )
    )


def seed_audit(store: Any, t: int) -> None:
    tenant = TENANTS[t]
    store.record_turn(
        TurnRecord(
            id=ids(t, 30), tenant_id=tenant, session_id=ids(t, 3), turn_number=1, user_message="hi"
        )
    )
    store.record_event(
        AuditEvent(
            id=ids(t, 31),
            tenant_id=tenant,
            session_id=ids(t, 3),
            turn_id=ids(t, 30),
            event_type="rule.matched",
        )
    )


def seed_profiles(store: Any, t: int) -> None:
    tenant = TENANTS[t]
    for n, ext in ((40, "ext"), (43, "ext2")):
        store.create_profile(CustomerProfile(id=ids(t, n), tenant_id=tenant, external_id=ext))
    store.link_identity(
        ChannelIdentity(
            id=ids(t, 41),
            tenant_id=tenant,
            profile_id=ids(t, 40),
            channel="web",
            channel_user_id="u",
        )
    )
    store.set_field(tenant, ids(t, 40), "name", "Ann")
    store.add_asset(
        ProfileAsset(
            id=ids(t, 42),
            tenant_id=tenant,
            profile_id=ids(t, 40),
            asset_type="document",
            asset_reference="s3://a",
        )
    )


def seed_sessions(store: Any, t: int) -> None:
    store.save(
        Session(
            id=ids(t, 50),
            tenant_id=TENANTS[t],
            agent_id=ids(t, 1),
            customer_profile_id=ids(t, 2),
            channel="web",
            user_channel_id="u",
            variables={"k": [1, "v"]},
            active_scenario_id=ids(t, 22),
            active_scenario_version=1,
            current_step_id="a",
        )
    )


def _plausible(t: int = 0) -> dict[str, Any]:
    """Right values by parameter name; the ids are those of tenant ``t``'s items."""
    return {
        "tenant_id": TENANTS[t],
        "customer_profile_id": ids(t, 2),
        "session_id": ids(t, 3),
        "episode_id": ids(t, 10),
        "entity_id": ids(t, 11),
        "relationship_id": ids(t, 13),
        "rule_id": ids(t, 21),
        "scenario_id": ids(t, 22),
        "template_id": ids(t, 23),
        "variable_id": ids(t, 24),
        "activation_id": ids(t, 25),
        "plan_id": ids(t, 26),
        "turn_id": ids(t, 30),
        "event_id": ids(t, 31),
        "profile_id": ids(t, 40),
        "identity_id": ids(t, 41),
        "asset_id": ids(t, 42),
        "source_id": ids(t, 43),
        "target_id": ids(t, 40),
        "embedding": vec(1.0),
        "model": "m",
        "name": "support",
        "version": 1,
        "from_version": 1,
        "scenario_version": 1,
        "step_id": "a",
        "channel": "web",
        "user_channel_id": "u",
        "channel_user_id": "u",
        "external_id": "ext",
        "field_name": "name",
        "value": "Ann",
        "tool_id": "tool",
        "status": None,
        "limit": 10,
        "migration": PendingMigration(
            plan_id=ids(t, 26), scenario_id=ids(t, 22), from_version=1, to_version=2
        ),
    }


def _foreign(agent_base: int) -> dict[str, list[Any]]:
    """Per parameter name, ids the first tenant does not own: the other tenant's."""
    own, other = _plausible(0), _plausible(1)
    out = {k: [other[k]] for k, v in own.items() if isinstance(v, UUID)}
    out["tenant_id"] = [TENANTS[1]]
    out["agent_id"] = [ids(1, agent_base)]
    return out


def _models(stores: dict[str, Any], reads: list[tuple[str, tuple[Any, ...]]]) -> list[BaseModel]:
    reference = next(iter(stores.values()))
    found = [getattr(reference, name)(*args) for name, args in reads]
    assert all(m is not None for m in found)
    return found


@contextmanager
def build_worlds(pg_url: str, redis_url: str, clock: ManualClock) -> Iterator[dict[str, World]]:
    """Every store's seeded backends, on one PostgreSQL database and one Redis database."""
    import redis

    with ExitStack() as stack:
        engine = create_engine(pg_url, pool_size=2)
        stack.callback(engine.dispose)
        pg_snapshot = postgres_state(engine)
        client = redis.Redis.from_url(redis_url)
        stack.callback(client.close)

        def pg_only() -> str:
            return pg_snapshot()

        def redis_and_pg() -> str:
            return redis_state(client) + pg_snapshot()

        def world(
            stores: dict[str, Any],
            seed: Callable[[Any, int], None],
            reads: list[tuple[str, tuple[Any, ...]]],
            agent_base: int,
            snapshots: dict[str, Callable[[], str]],
        ) -> World:
            _memory(seed, stores)
            plausible = _plausible() | {"agent_id": ids(0, agent_base)}
            return World(stores, snapshots, plausible, _foreign(agent_base), _models(stores, reads))

        def memory_snapshot(store: Any) -> Callable[[], str]:
            return lambda: memory_state(store)

        def pair(memory: Any, postgres: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            stores = {"memory": memory, "postgres": postgres}
            return stores, {"memory": memory_snapshot(memory), "postgres": pg_only}

        worlds: dict[str, World] = {}
        stores, snaps = pair(
            InMemoryMemoryStore(dimensions=DIMS, clock=clock),
            PostgresMemoryStore(engine, dimensions=DIMS, clock=clock),
        )
        t0 = TENANTS[0]
        worlds["memory"] = world(
            stores,
            seed_memory,
            [
                ("get_episode", (t0, ids(0, 10))),
                ("get_entity", (t0, ids(0, 11))),
                ("get_relationship", (t0, ids(0, 13))),
            ],
            1,
            snaps,
        )
        stores, snaps = pair(
            InMemoryConfigStore(dimensions=DIMS, clock=clock),
            PostgresConfigStore(engine, dimensions=DIMS, clock=clock),
        )
        worlds["config"] = world(
            stores,
            seed_config,
            [
                ("get_agent", (t0, ids(0, 20))),
                ("get_rule", (t0, ids(0, 21))),
                ("get_scenario", (t0, ids(0, 22))),
                ("get_template", (t0, ids(0, 23))),
                ("get_variable", (t0, ids(0, 24))),
                ("get_tool_activation", (t0, ids(0, 25))),
                ("get_migration_plan", (t0, ids(0, 26))),
            ],
            20,
            snaps,
        )
        stores, snaps = pair(
            InMemoryAuditStore(clock=clock), PostgresAuditStore(engine, clock=clock)
        )
        worlds["audit"] = world(
            stores,
            seed_audit,
            [("get_turn", (t0, ids(0, 30))), ("get_event", (t0, ids(0, 31)))],
            1,
            snaps,
        )
        stores, snaps = pair(
            InMemoryProfileStore(clock=clock), PostgresProfileStore(engine, clock=clock)
        )
        worlds["profiles"] = world(
            stores,
            seed_profiles,
            [
                ("get_profile", (t0, ids(0, 40))),
                ("get_identity", (t0, "web", "u")),
                ("get_asset", (t0, ids(0, 42))),
            ],
            1,
            snaps,
        )

        memory_sessions = InMemorySessionStore(clock=clock)
        # Both Redis backends share the one Redis database: the second is seeded through the
        # first's hot tier, and a snapshot covers both tiers of both.
        redis_cold = stack.enter_context(
            _closing(RedisSessionStore.from_url(redis_url, cold_tier="redis", clock=clock))
        )
        postgres_cold = stack.enter_context(
            _closing(
                RedisSessionStore.from_url(
                    redis_url, cold_tier="postgres", database_url=pg_url, clock=clock, pool_size=2
                )
            )
        )
        for store in (memory_sessions, redis_cold):
            for t in range(2):
                seed_sessions(store, t)
        worlds["sessions"] = World(
            {
                "memory": memory_sessions,
                "redis-redis-cold": redis_cold,
                "redis-postgres-cold": postgres_cold,
            },
            {
                "memory": memory_snapshot(memory_sessions),
                "redis-redis-cold": redis_and_pg,
                "redis-postgres-cold": redis_and_pg,
            },
            _plausible() | {"agent_id": ids(0, 1), "session_id": ids(0, 50)},
            _foreign(1) | {"session_id": [ids(1, 50)]},
            _models({"memory": memory_sessions}, [("get", (t0, ids(0, 50)))]),
        )
        yield worlds


@contextmanager
def _closing(store: Any) -> Iterator[Any]:
    try:
        yield store
    finally:
        store.close()


__all__ = ["DIMS", "TENANTS", "UTC_NOW", "World", "build_worlds"]

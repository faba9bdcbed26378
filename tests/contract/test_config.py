"""The ConfigStore contract: every backend must pass every test here."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest

from stores.common.clock import ManualClock
from stores.common.pagination import Page, encode_cursor
from stores.config import (
    Agent,
    ConfigStore,
    InMemoryConfigStore,
    MigrationPlan,
    MigrationPlanStatus,
    Rule,
    RuleScope,
    Scenario,
    ScenarioStep,
    Template,
    TemplateMode,
    ToolActivation,
    Variable,
)
from stores.errors import ConflictError, DuplicateError, InvalidInputError, NotFoundError
from tests import services

DIMS = 1536
T = TypeVar("T")


@pytest.fixture(scope="module")
def config_engine(pg_server: str, pg_template: str) -> Iterator[Any]:
    """One migrated database shared by this module's PostgreSQL tests (tenants keep them
    apart)."""
    from stores.postgres.engine import create_engine

    name = services.unique_name("hearth_cfg")
    url = services.create_database(pg_server, name, template=pg_template)
    engine = create_engine(url, pool_size=10, max_overflow=10)
    try:
        yield engine
    finally:
        engine.dispose()
        services.drop_database(pg_server, name)


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(request: pytest.FixtureRequest, clock: ManualClock) -> ConfigStore:
    if request.param == "memory":
        return InMemoryConfigStore(dimensions=DIMS, clock=clock)
    from stores.config import PostgresConfigStore

    engine = request.getfixturevalue("config_engine")
    pg_store: ConfigStore = PostgresConfigStore(engine, dimensions=DIMS, clock=clock)
    return pg_store


@pytest.fixture
def tenant() -> UUID:
    return uuid4()


@pytest.fixture
def agent(store: ConfigStore, tenant: UUID) -> Agent:
    return store.create_agent(Agent(tenant_id=tenant, name="support"))


def vec(*components: float) -> list[float]:
    """A DIMS-long vector whose first components are given (the rest zero)."""
    return [*components, *([0.0] * (DIMS - len(components)))]


def all_pages(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    items: list[T] = []
    cursor: str | None = None
    for _ in range(1000):
        page = fetch(cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items
    raise AssertionError("pagination never ended")


def rule(agent: Agent, **kw: Any) -> Rule:
    base: dict[str, Any] = {
        "tenant_id": agent.tenant_id,
        "agent_id": agent.id,
        "name": "r",
        "condition_text": "customer asks for a refund",
        "action_type": "reply",
    }
    return Rule(**(base | kw))


def scenario(agent: Agent, **kw: Any) -> Scenario:
    base: dict[str, Any] = {
        "tenant_id": agent.tenant_id,
        "agent_id": agent.id,
        "name": "refund",
        "entry_condition": "wants money back",
        "steps": [ScenarioStep(id="ask", transitions=["done"]), ScenarioStep(id="done")],
    }
    return Scenario(**(base | kw))


def test_agent_lifecycle(store: ConfigStore, tenant: UUID, clock: ManualClock) -> None:
    created = store.create_agent(Agent(tenant_id=tenant, name="a", description="d"))
    assert created.created_at == created.updated_at == clock()
    assert store.get_agent(tenant, created.id) == created
    assert store.get_agent(str(tenant), str(created.id)) == created
    assert store.get_agent_by_name(tenant, "a") == created

    clock.advance(minutes=1)
    created.description = "changed"
    updated = store.update_agent(created)
    assert updated.description == "changed"
    assert updated.created_at == created.created_at
    assert updated.updated_at == clock()
    assert store.get_agent(tenant, created.id) == updated

    assert store.delete_agent(tenant, created.id) is True
    assert store.get_agent(tenant, created.id) is None
    assert store.get_agent_by_name(tenant, "a") is None
    assert store.delete_agent(tenant, created.id) is False
    assert store.list_agents(tenant).items == []
    with pytest.raises(NotFoundError):
        store.update_agent(created)


def test_agent_names_are_unique_per_tenant_among_live_agents(
    store: ConfigStore, tenant: UUID
) -> None:
    first = store.create_agent(Agent(tenant_id=tenant, name="same"))
    with pytest.raises(DuplicateError):
        store.create_agent(Agent(tenant_id=tenant, name="same"))
    store.create_agent(Agent(tenant_id=uuid4(), name="same"))
    other = store.create_agent(Agent(tenant_id=tenant, name="other"))
    other.name = "same"
    with pytest.raises(DuplicateError):
        store.update_agent(other)
    store.delete_agent(tenant, first.id)
    assert store.create_agent(Agent(tenant_id=tenant, name="same")).name == "same"


def test_creating_an_existing_id_is_a_duplicate(store: ConfigStore, agent: Agent) -> None:
    with pytest.raises(DuplicateError):
        store.create_agent(agent.model_copy(update={"name": "new name"}))
    made = store.create_rule(rule(agent))
    with pytest.raises(DuplicateError):
        store.create_rule(made)


def test_ids_are_unique_within_each_kind_of_item(store: ConfigStore, agent: Agent) -> None:
    made = store.create_rule(rule(agent, id=agent.id))
    assert made.id == agent.id
    tpl = store.create_template(
        Template(tenant_id=agent.tenant_id, agent_id=agent.id, id=made.id, name="t", content="c")
    )
    assert store.get_template(agent.tenant_id, tpl.id) == tpl
    with pytest.raises(DuplicateError):
        store.create_template(tpl.model_copy(update={"name": "again"}))
    assert store.delete_rule(agent.tenant_id, made.id) is True
    assert store.get_agent(agent.tenant_id, agent.id) == agent
    assert store.get_template(agent.tenant_id, tpl.id) == tpl
    with pytest.raises(DuplicateError):
        store.create_rule(rule(agent, id=made.id))


def test_ids_of_another_tenant_behave_as_missing(store: ConfigStore, agent: Agent) -> None:
    stranger = uuid4()
    made_rule = store.create_rule(rule(agent))
    made_scenario = store.create_scenario(scenario(agent))
    assert store.get_agent(stranger, agent.id) is None
    assert store.get_rule(stranger, made_rule.id) is None
    assert store.get_scenario(stranger, made_scenario.id) is None
    assert store.get_scenario_version(stranger, made_scenario.id, 1) is None
    assert store.list_rules(stranger, agent.id).items == []
    assert store.list_scenario_archives(stranger, made_scenario.id).items == []
    assert store.vector_search_rules(stranger, agent.id, vec(1.0)) == []
    assert store.delete_rule(stranger, made_rule.id) is False
    assert store.delete_agent(stranger, agent.id) is False
    with pytest.raises(NotFoundError):
        store.update_rule(made_rule.model_copy(update={"tenant_id": stranger}))
    with pytest.raises(NotFoundError):
        store.create_rule(rule(agent, tenant_id=stranger))
    with pytest.raises(NotFoundError):
        store.create_migration_plan(
            MigrationPlan(
                tenant_id=stranger, scenario_id=made_scenario.id, from_version=1, to_version=2
            )
        )
    assert store.get_rule(agent.tenant_id, made_rule.id) == made_rule


def test_pagination_neither_skips_nor_repeats(
    store: ConfigStore, tenant: UUID, clock: ManualClock
) -> None:
    made = []
    for i in range(7):
        made.append(store.create_agent(Agent(tenant_id=tenant, name=f"a{i}")))
        if i % 3 == 0:  # some share a timestamp, so ties on created_at are exercised
            clock.advance(seconds=1)
    listed = all_pages(lambda c: store.list_agents(tenant, limit=3, cursor=c))
    assert [a.id for a in listed] == [
        a.id for a in sorted(made, key=lambda a: (a.created_at, a.id))
    ]
    assert store.list_agents(tenant, limit=7).next_cursor is None
    assert store.list_agents(uuid4()).items == []


def test_list_agents_filters_enabled(store: ConfigStore, tenant: UUID) -> None:
    on = store.create_agent(Agent(tenant_id=tenant, name="on"))
    off = store.create_agent(Agent(tenant_id=tenant, name="off", enabled=False))
    assert [a.id for a in store.list_agents(tenant, enabled=True).items] == [on.id]
    assert [a.id for a in store.list_agents(tenant, enabled=False).items] == [off.id]


@pytest.mark.parametrize("cursor", ["garbage!", "WyJ4Il0", "WzEsMl0"])
def test_bad_cursor_is_invalid_input(store: ConfigStore, agent: Agent, cursor: str) -> None:
    with pytest.raises(InvalidInputError):
        store.list_agents(agent.tenant_id, cursor=cursor)
    with pytest.raises(InvalidInputError):
        store.list_rules(agent.tenant_id, agent.id, cursor=cursor)


def test_arguments_of_the_wrong_type_are_invalid_input(store: ConfigStore, agent: Agent) -> None:
    number: Any = 5
    with pytest.raises(InvalidInputError):
        store.list_agents(agent.tenant_id, cursor=number)
    with pytest.raises(InvalidInputError):
        store.list_rules(agent.tenant_id, agent.id, scope_id=number)
    with pytest.raises(InvalidInputError):
        store.get_agent_by_name(agent.tenant_id, number)


def test_a_tampered_text_cursor_is_invalid_input(store: ConfigStore, agent: Agent) -> None:
    cursor = encode_cursor("nul \x00 inside", uuid4())
    with pytest.raises(InvalidInputError):
        store.list_tool_activations(agent.tenant_id, agent.id, cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_bad_limit_is_invalid_input(store: ConfigStore, agent: Agent, limit: int) -> None:
    with pytest.raises(InvalidInputError):
        store.list_agents(agent.tenant_id, limit=limit)
    with pytest.raises(InvalidInputError):
        store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0), limit=limit)


def test_bad_ids_are_invalid_input(store: ConfigStore, agent: Agent) -> None:
    with pytest.raises(InvalidInputError) as info:
        store.get_agent("not-a-uuid", agent.id)
    assert info.value.field == "tenant_id"
    with pytest.raises(InvalidInputError):
        store.get_rule(agent.tenant_id, "nope")
    with pytest.raises(InvalidInputError):
        store.delete_scenario(agent.tenant_id, "12")
    with pytest.raises(InvalidInputError):
        store.list_rules(agent.tenant_id, "x")


@pytest.mark.parametrize(
    "embedding",
    [
        vec(1.0)[:-1],
        [*vec(1.0), 0.0],
        vec(math.nan),
        vec(math.inf),
        vec(1.0, -math.inf),
        vec(),
        vec(1.0, 1e39),
        vec(1e-50),
    ],
    ids=["short", "long", "nan", "inf", "-inf", "zero", "beyond-float32", "zero-in-float32"],
)
def test_bad_embeddings_are_rejected_and_nothing_is_written(
    store: ConfigStore, agent: Agent, embedding: list[float]
) -> None:
    with pytest.raises(InvalidInputError):
        store.create_rule(rule(agent, embedding=embedding))
    with pytest.raises(InvalidInputError):
        store.create_scenario(scenario(agent, embedding=embedding))
    with pytest.raises(InvalidInputError):
        store.vector_search_rules(agent.tenant_id, agent.id, embedding)
    with pytest.raises(InvalidInputError):
        store.vector_search_scenarios(agent.tenant_id, agent.id, embedding)
    assert store.list_rules(agent.tenant_id, agent.id).items == []
    assert store.list_scenarios(agent.tenant_id, agent.id).items == []


@pytest.mark.parametrize(
    "odd", [True, "0.5", None, 10**400], ids=["bool", "text", "none", "huge-int"]
)
def test_search_rejects_components_that_are_not_numbers(
    store: ConfigStore, agent: Agent, odd: Any
) -> None:
    query: list[Any] = [*vec(1.0)[:-1], odd]
    with pytest.raises(InvalidInputError):
        store.vector_search_rules(agent.tenant_id, agent.id, query)
    with pytest.raises(InvalidInputError):
        store.vector_search_scenarios(agent.tenant_id, agent.id, query)


@pytest.mark.parametrize("min_score", [math.nan, math.inf, "0.5"])
def test_min_score_must_be_a_finite_number(
    store: ConfigStore, agent: Agent, min_score: Any
) -> None:
    with pytest.raises(InvalidInputError):
        store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0), min_score=min_score)
    with pytest.raises(InvalidInputError):
        store.vector_search_scenarios(agent.tenant_id, agent.id, vec(1.0), min_score=min_score)


@pytest.mark.parametrize("bad", ["nul \x00 inside", "s" * 201, "lone \ud800"])
def test_bad_text_filters_are_invalid_input(store: ConfigStore, agent: Agent, bad: str) -> None:
    tid, aid = agent.tenant_id, agent.id
    with pytest.raises(InvalidInputError):
        store.list_rules(tid, aid, scope_id=bad)
    with pytest.raises(InvalidInputError):
        store.vector_search_rules(tid, aid, vec(1.0), scope_id=bad)
    with pytest.raises(InvalidInputError):
        store.list_templates(tid, aid, scope_id=bad)
    with pytest.raises(InvalidInputError):
        store.get_agent_by_name(tid, bad)
    with pytest.raises(InvalidInputError):
        store.get_variable_by_name(tid, aid, bad)
    with pytest.raises(InvalidInputError):
        store.get_tool_activation_for_tool(tid, aid, bad)


def test_an_enabled_filter_that_is_not_a_bool_is_invalid_input(
    store: ConfigStore, agent: Agent
) -> None:
    tid, aid = agent.tenant_id, agent.id
    bad: Any = "yes"
    calls: list[Callable[[], object]] = [
        lambda: store.list_agents(tid, enabled=bad),
        lambda: store.list_rules(tid, aid, enabled=bad),
        lambda: store.vector_search_rules(tid, aid, vec(1.0), enabled=bad),
        lambda: store.list_scenarios(tid, aid, enabled=bad),
        lambda: store.vector_search_scenarios(tid, aid, vec(1.0), enabled=bad),
        lambda: store.list_tool_activations(tid, aid, enabled=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()


def test_nul_in_source_text_is_invalid_input(store: ConfigStore, agent: Agent) -> None:
    made = store.create_rule(rule(agent))
    sc = store.create_scenario(scenario(agent))
    with pytest.raises(InvalidInputError):
        store.set_rule_embedding(agent.tenant_id, made.id, vec(1.0), "m", source_text="a\x00")
    with pytest.raises(InvalidInputError):
        store.set_scenario_embedding(agent.tenant_id, sc.id, vec(1.0), "m", source_text="a\x00")
    assert store.get_rule(agent.tenant_id, made.id) == made


def test_oversized_and_malformed_fields_are_rejected(store: ConfigStore, agent: Agent) -> None:
    with pytest.raises(InvalidInputError):
        store.create_rule(rule(agent, condition_text="x" * 100_001))
    with pytest.raises(InvalidInputError):
        store.create_rule(rule(agent, name="n" * 201))
    with pytest.raises(InvalidInputError):
        store.create_rule(rule(agent, condition_text="nul \x00 inside"))
    with pytest.raises(InvalidInputError):
        store.create_rule(rule(agent, action_config={"x": math.nan}))
    with pytest.raises(InvalidInputError):
        store.create_rule(rule(agent, action_config={"x": object()}))
    with pytest.raises(InvalidInputError):
        store.create_rule(rule(agent, priority=2**31))
    with pytest.raises(InvalidInputError):
        store.create_agent(Agent(tenant_id=agent.tenant_id, name="x" * 201))
    with pytest.raises(InvalidInputError):
        store.create_variable(
            Variable(
                tenant_id=agent.tenant_id,
                agent_id=agent.id,
                name="v",
                default_value={"big": "y" * 1_000_001},
            )
        )
    assert store.list_rules(agent.tenant_id, agent.id).items == []
    assert store.list_variables(agent.tenant_id, agent.id).items == []


def test_unknown_enum_values_are_invalid_input(store: ConfigStore, agent: Agent) -> None:
    with pytest.raises(InvalidInputError):
        store.list_rules(agent.tenant_id, agent.id, scope="EVERYWHERE")
    with pytest.raises(InvalidInputError):
        store.list_templates(agent.tenant_id, agent.id, mode="LOUD")
    with pytest.raises(InvalidInputError):
        store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0), scope="nope")
    with pytest.raises(InvalidInputError) as info:
        store.list_migration_plans(agent.tenant_id, status="SHIPPED")
    assert info.value.field == "status"


def test_rule_lifecycle_and_filters(store: ConfigStore, agent: Agent, clock: ManualClock) -> None:
    g = store.create_rule(rule(agent, name="g", action_config={"text": "hi", "n": [1, 2]}))
    s = store.create_rule(rule(agent, name="s", scope=RuleScope.SCENARIO, scope_id="sc1"))
    off = store.create_rule(rule(agent, name="off", enabled=False, priority=-3))
    assert store.get_rule(agent.tenant_id, g.id) == g
    assert g.action_config == {"text": "hi", "n": [1, 2]}
    tid, aid = agent.tenant_id, agent.id
    assert {r.id for r in store.list_rules(tid, aid).items} == {g.id, s.id, off.id}
    assert [r.id for r in store.list_rules(tid, aid, scope="SCENARIO").items] == [s.id]
    assert [r.id for r in store.list_rules(tid, aid, scope_id="sc1").items] == [s.id]
    assert [r.id for r in store.list_rules(tid, aid, enabled=False).items] == [off.id]

    clock.advance(seconds=5)
    g.priority = 9
    updated = store.update_rule(g)
    assert updated.priority == 9
    assert updated.updated_at == clock()
    assert updated.created_at == g.created_at
    with pytest.raises(InvalidInputError):
        store.update_rule(g.model_copy(update={"agent_id": uuid4()}))

    assert store.delete_rule(tid, s.id) is True
    assert store.get_rule(tid, s.id) is None
    assert store.delete_rule(tid, s.id) is False
    with pytest.raises(NotFoundError):
        store.update_rule(s)
    assert {r.id for r in store.list_rules(tid, aid).items} == {g.id, off.id}


def test_editing_a_condition_drops_its_stale_embedding(store: ConfigStore, agent: Agent) -> None:
    made = store.create_rule(rule(agent, embedding=vec(1.0, 2.0), embedding_model="m"))
    edited = store.update_rule(made.model_copy(update={"condition_text": "something else"}))
    assert edited.embedding is None
    assert edited.embedding_model is None
    fresh = store.update_rule(
        edited.model_copy(
            update={"condition_text": "third", "embedding": vec(0.0, 1.0), "embedding_model": "m"}
        )
    )
    assert fresh.embedding is not None
    assert fresh.embedding[1] == pytest.approx(1.0)
    kept = store.update_rule(fresh.model_copy(update={"priority": 4}))
    assert kept.embedding == fresh.embedding


def test_creating_under_a_missing_or_deleted_agent_is_not_found(
    store: ConfigStore, agent: Agent
) -> None:
    ghost = Agent(tenant_id=agent.tenant_id, name="ghost")
    with pytest.raises(NotFoundError):
        store.create_rule(rule(ghost))
    store.delete_agent(agent.tenant_id, agent.id)
    with pytest.raises(NotFoundError):
        store.create_rule(rule(agent))
    with pytest.raises(NotFoundError):
        store.create_scenario(scenario(agent))
    with pytest.raises(NotFoundError):
        store.create_template(
            Template(tenant_id=agent.tenant_id, agent_id=agent.id, name="t", content="c")
        )
    with pytest.raises(NotFoundError):
        store.create_tool_activation(
            ToolActivation(tenant_id=agent.tenant_id, agent_id=agent.id, tool_id="x")
        )


def test_deleting_an_agent_deletes_its_configuration(store: ConfigStore, agent: Agent) -> None:
    tid, aid = agent.tenant_id, agent.id
    r = store.create_rule(rule(agent, embedding=vec(1.0)))
    s = store.create_scenario(scenario(agent))
    t = store.create_template(Template(tenant_id=tid, agent_id=aid, name="t", content="c"))
    v = store.create_variable(Variable(tenant_id=tid, agent_id=aid, name="v"))
    a = store.create_tool_activation(ToolActivation(tenant_id=tid, agent_id=aid, tool_id="x"))
    assert store.delete_agent(tid, aid) is True
    assert store.get_rule(tid, r.id) is None
    assert store.get_scenario(tid, s.id) is None
    assert store.get_template(tid, t.id) is None
    assert store.get_variable(tid, v.id) is None
    assert store.get_tool_activation(tid, a.id) is None
    assert store.vector_search_rules(tid, aid, vec(1.0)) == []
    assert store.list_tool_activations(tid, aid).items == []


def test_vector_search_rules_is_best_first_with_cosine_scores(
    store: ConfigStore, agent: Agent
) -> None:
    near = store.create_rule(rule(agent, name="near", embedding=vec(1.0, 0.1)))
    mid = store.create_rule(rule(agent, name="mid", embedding=vec(1.0, 1.0)))
    far = store.create_rule(rule(agent, name="far", embedding=vec(-1.0, 0.2)))
    store.create_rule(rule(agent, name="none"))  # no embedding: never returned
    results = store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0))
    assert [r.id for r, _ in results] == [near.id, mid.id, far.id]
    scores = [s for _, s in results]
    assert scores[0] == pytest.approx(1 / math.sqrt(1.01), abs=1e-5)
    assert scores[1] == pytest.approx(1 / math.sqrt(2), abs=1e-5)
    assert scores[2] == pytest.approx(-1 / math.sqrt(1.04), abs=1e-5)
    assert [
        r.id for r, _ in store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0), limit=2)
    ] == [near.id, mid.id]
    assert [
        r.id
        for r, _ in store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0), min_score=0.5)
    ] == [near.id, mid.id]
    assert store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0), min_score=0.999) == []


def test_vector_search_rules_honours_filters_and_hides_deleted(
    store: ConfigStore, agent: Agent
) -> None:
    tid = agent.tenant_id
    other_agent = store.create_agent(Agent(tenant_id=tid, name="other"))
    live = store.create_rule(rule(agent, embedding=vec(1.0)))
    gone = store.create_rule(rule(agent, embedding=vec(1.0, 0.01)))
    off = store.create_rule(rule(agent, embedding=vec(1.0, 0.02), enabled=False))
    scoped = store.create_rule(
        rule(agent, embedding=vec(1.0, 0.03), scope=RuleScope.STEP, scope_id="s1")
    )
    store.create_rule(rule(other_agent, embedding=vec(1.0)))
    store.delete_rule(tid, gone.id)
    assert [r.id for r, _ in store.vector_search_rules(tid, agent.id, vec(1.0))] == [
        live.id,
        scoped.id,
    ]
    assert {r.id for r, _ in store.vector_search_rules(tid, agent.id, vec(1.0), enabled=None)} == {
        live.id,
        off.id,
        scoped.id,
    }
    assert [
        r.id
        for r, _ in store.vector_search_rules(tid, agent.id, vec(1.0), scope="STEP", scope_id="s1")
    ] == [scoped.id]
    assert store.vector_search_rules(tid, agent.id, vec(1.0), scope_id="nowhere") == []


def test_vector_search_scenarios(store: ConfigStore, agent: Agent) -> None:
    a = store.create_scenario(scenario(agent, name="a", embedding=vec(0.0, 1.0)))
    b = store.create_scenario(scenario(agent, name="b", embedding=vec(1.0, 1.0)))
    store.create_scenario(scenario(agent, name="c", embedding=vec(1.0), enabled=False))
    d = store.create_scenario(scenario(agent, name="d", embedding=vec(0.0, 1.0, 0.1)))
    store.delete_scenario(agent.tenant_id, d.id)
    results = store.vector_search_scenarios(agent.tenant_id, agent.id, vec(0.0, 1.0))
    assert [s.id for s, _ in results] == [a.id, b.id]
    assert results[0][1] == pytest.approx(1.0, abs=1e-5)
    assert store.vector_search_scenarios(agent.tenant_id, uuid4(), vec(1.0)) == []


def test_vector_search_returns_every_match_up_to_the_limit(
    store: ConfigStore, agent: Agent
) -> None:
    made = [
        store.create_rule(rule(agent, name=f"r{i}", embedding=vec(1.0, i / 10))) for i in range(12)
    ]
    results = store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0), limit=50)
    assert [r.id for r, _ in results] == [r.id for r in made]
    assert len(store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0), limit=5)) == 5


def test_backfill_lists_missing_or_foreign_embeddings_across_tenants(store: ConfigStore) -> None:
    agents = [store.create_agent(Agent(tenant_id=uuid4(), name="a")) for _ in range(3)]
    missing = [store.create_rule(rule(a)) for a in agents]
    other_model = store.create_rule(rule(agents[0], embedding=vec(1.0), embedding_model="old"))
    current = store.create_rule(rule(agents[1], embedding=vec(1.0), embedding_model="new"))
    deleted = store.create_rule(rule(agents[2]))
    store.delete_rule(agents[2].tenant_id, deleted.id)
    ours = {a.tenant_id for a in agents}
    listed = [
        r
        for r in all_pages(lambda c: store.list_rules_needing_embedding("new", limit=2, cursor=c))
        if r.tenant_id in ours
    ]
    assert {r.id for r in listed} == {r.id for r in [*missing, other_model]}
    assert current.id not in {r.id for r in listed}
    assert len(listed) == len({r.id for r in listed})


def test_set_rule_embedding_guards_against_edited_text(store: ConfigStore, agent: Agent) -> None:
    made = store.create_rule(rule(agent))
    tid = agent.tenant_id
    assert store.set_rule_embedding(tid, made.id, vec(1.0), "m", source_text="stale text") is False
    assert store.get_rule(tid, made.id).embedding is None  # type: ignore[union-attr]
    assert (
        store.set_rule_embedding(tid, made.id, vec(1.0), "m", source_text=made.condition_text)
        is True
    )
    stored = store.get_rule(tid, made.id)
    assert stored is not None
    assert stored.embedding_model == "m"
    assert stored.updated_at == made.updated_at
    assert [r.id for r, _ in store.vector_search_rules(tid, agent.id, vec(1.0))] == [made.id]
    assert store.set_rule_embedding(uuid4(), made.id, vec(1.0), "m") is False
    with pytest.raises(InvalidInputError):
        store.set_rule_embedding(tid, made.id, vec(1.0)[:10], "m")


def test_scenario_embedding_backfill(store: ConfigStore, agent: Agent) -> None:
    made = store.create_scenario(scenario(agent))
    no_text = store.create_scenario(scenario(agent, name="plain", entry_condition=None))
    listed = all_pages(lambda c: store.list_scenarios_needing_embedding("m", cursor=c))
    ids = {s.id for s in listed}
    assert made.id in ids
    assert no_text.id not in ids
    assert store.set_scenario_embedding(agent.tenant_id, made.id, vec(0.0, 1.0), "m") is True
    stored = store.get_scenario(agent.tenant_id, made.id)
    assert stored is not None
    assert stored.version == 1
    assert stored.embedding_model == "m"
    listed = all_pages(lambda c: store.list_scenarios_needing_embedding("m", cursor=c))
    assert made.id not in {s.id for s in listed}


def test_scenario_updates_bump_the_version_and_archive_the_old_one(
    store: ConfigStore, agent: Agent, clock: ManualClock
) -> None:
    tid = agent.tenant_id
    v1 = store.create_scenario(scenario(agent, version=7, embedding=vec(1.0)))
    assert v1.version == 1
    clock.advance(minutes=1)
    v2 = store.update_scenario(
        v1.model_copy(update={"steps": [ScenarioStep(id="only")], "name": "refund v2"})
    )
    assert v2.version == 2
    assert v2.updated_at == clock()
    assert v2.created_at == v1.created_at
    assert store.get_scenario(tid, v1.id) == v2
    old = store.get_scenario_version(tid, v1.id, 1)
    assert old is not None
    assert old.name == "refund"
    assert [s.id for s in old.steps] == ["ask", "done"]
    assert store.get_scenario_version(tid, v1.id, 2) == v2
    assert store.get_scenario_version(tid, v1.id, 3) is None
    v3 = store.update_scenario(v2.model_copy(update={"name": "refund v3"}))
    archives = store.list_scenario_archives(tid, v1.id)
    assert [a.version for a in archives.items] == [1, 2]
    assert archives.items[1].scenario.name == "refund v2"
    assert archives.items[1].archived_at == clock()
    paged = all_pages(lambda c: store.list_scenario_archives(tid, v1.id, limit=1, cursor=c))
    assert [a.version for a in paged] == [1, 2]
    assert v3.version == 3

    store.delete_scenario(tid, v1.id)
    assert store.get_scenario_version(tid, v1.id, 1) is None
    assert store.list_scenario_archives(tid, v1.id).items == []
    with pytest.raises(NotFoundError):
        store.update_scenario(v3)


def test_scenario_update_with_a_stale_version_conflicts(store: ConfigStore, agent: Agent) -> None:
    v1 = store.create_scenario(scenario(agent))
    store.update_scenario(v1.model_copy(update={"name": "first writer"}))
    with pytest.raises(ConflictError) as info:
        store.update_scenario(v1.model_copy(update={"name": "second writer"}))
    assert info.value.current_version == 2
    current = store.get_scenario(agent.tenant_id, v1.id)
    assert current is not None
    assert current.name == "first writer"
    assert [a.version for a in store.list_scenario_archives(agent.tenant_id, v1.id).items] == [1]
    with pytest.raises(InvalidInputError):
        store.update_scenario(current.model_copy(update={"agent_id": uuid4()}))


def test_concurrent_scenario_updates_exactly_one_wins(store: ConfigStore, agent: Agent) -> None:
    v1 = store.create_scenario(scenario(agent))
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def writer(i: int) -> None:
        barrier.wait()
        try:
            store.update_scenario(v1.model_copy(update={"name": f"writer {i}"}))
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["won"]
    current = store.get_scenario(agent.tenant_id, v1.id)
    assert current is not None
    assert current.version == 2
    assert [a.version for a in store.list_scenario_archives(agent.tenant_id, v1.id).items] == [1]


def test_templates(store: ConfigStore, agent: Agent) -> None:
    tid, aid = agent.tenant_id, agent.id
    t1 = store.create_template(Template(tenant_id=tid, agent_id=aid, name="hi", content="Hello"))
    t2 = store.create_template(
        Template(
            tenant_id=tid,
            agent_id=aid,
            name="bye",
            content="Bye",
            mode=TemplateMode.EXCLUSIVE,
            scope=RuleScope.STEP,
            scope_id="end",
        )
    )
    assert store.get_template(tid, t1.id) == t1
    assert [t.id for t in store.list_templates(tid, aid, mode="EXCLUSIVE").items] == [t2.id]
    assert [t.id for t in store.list_templates(tid, aid, scope="STEP", scope_id="end").items] == [
        t2.id
    ]
    t1.content = "Hello there"
    assert store.update_template(t1).content == "Hello there"
    assert store.delete_template(tid, t1.id) is True
    assert [t.id for t in store.list_templates(tid, aid).items] == [t2.id]
    assert store.get_template(uuid4(), t2.id) is None


def test_variable_names_are_unique_per_agent(store: ConfigStore, agent: Agent) -> None:
    tid, aid = agent.tenant_id, agent.id
    v = store.create_variable(
        Variable(tenant_id=tid, agent_id=aid, name="order_id", default_value={"a": [1]})
    )
    assert store.get_variable_by_name(tid, aid, "order_id") == v
    assert v.default_value == {"a": [1]}
    with pytest.raises(DuplicateError):
        store.create_variable(Variable(tenant_id=tid, agent_id=aid, name="order_id"))
    other_agent = store.create_agent(Agent(tenant_id=tid, name="other"))
    store.create_variable(Variable(tenant_id=tid, agent_id=other_agent.id, name="order_id"))
    w = store.create_variable(Variable(tenant_id=tid, agent_id=aid, name="email"))
    with pytest.raises(DuplicateError):
        store.update_variable(w.model_copy(update={"name": "order_id"}))
    assert store.delete_variable(tid, v.id) is True
    assert store.get_variable_by_name(tid, aid, "order_id") is None
    renamed = store.update_variable(w.model_copy(update={"name": "order_id"}))
    assert store.get_variable_by_name(tid, aid, "order_id") == renamed
    assert [x.name for x in store.list_variables(tid, aid).items] == ["order_id"]


def test_tool_activations_are_unique_per_agent(store: ConfigStore, agent: Agent) -> None:
    tid, aid = agent.tenant_id, agent.id
    search = store.create_tool_activation(
        ToolActivation(
            tenant_id=tid, agent_id=aid, tool_id="search", policy_overrides={"max_calls": 3}
        )
    )
    with pytest.raises(DuplicateError):
        store.create_tool_activation(ToolActivation(tenant_id=tid, agent_id=aid, tool_id="search"))
    calc = store.create_tool_activation(
        ToolActivation(tenant_id=tid, agent_id=aid, tool_id="calc", enabled=False)
    )
    assert store.get_tool_activation_for_tool(tid, aid, "search") == search
    assert [a.tool_id for a in store.list_tool_activations(tid, aid).items] == ["calc", "search"]
    assert [a.id for a in store.list_tool_activations(tid, aid, enabled=False).items] == [calc.id]
    with pytest.raises(DuplicateError):
        store.update_tool_activation(calc.model_copy(update={"tool_id": "search"}))
    calc.enabled = True
    assert store.update_tool_activation(calc).enabled is True
    assert store.delete_tool_activation(tid, search.id) is True
    assert store.get_tool_activation(tid, search.id) is None
    assert store.delete_tool_activation(tid, search.id) is False
    again = store.create_tool_activation(
        ToolActivation(tenant_id=tid, agent_id=aid, tool_id="search")
    )
    assert store.get_tool_activation_for_tool(tid, aid, "search") == again


@pytest.fixture
def scenario_v2(store: ConfigStore, agent: Agent) -> Scenario:
    v1 = store.create_scenario(scenario(agent))
    return store.update_scenario(v1)


def plan(sc: Scenario, **kw: Any) -> MigrationPlan:
    base: dict[str, Any] = {
        "tenant_id": sc.tenant_id,
        "scenario_id": sc.id,
        "from_version": 1,
        "to_version": 2,
        "transformation_map": {"ask": "only"},
    }
    return MigrationPlan(**(base | kw))


def test_migration_plan_happy_path(
    store: ConfigStore, scenario_v2: Scenario, clock: ManualClock
) -> None:
    tid = scenario_v2.tenant_id
    p = store.create_migration_plan(plan(scenario_v2))
    assert p.status == MigrationPlanStatus.DRAFT
    assert p.created_at == clock()
    assert store.get_migration_plan(tid, p.id) == p
    p.transformation_map = {"ask": "only", "done": "only"}
    assert store.update_migration_plan(p).transformation_map == {"ask": "only", "done": "only"}
    clock.advance(minutes=1)
    approved = store.approve_migration_plan(tid, p.id)
    assert approved.status == MigrationPlanStatus.APPROVED
    assert approved.approved_at == clock()
    clock.advance(minutes=1)
    deployed = store.deploy_migration_plan(tid, p.id)
    assert deployed.status == MigrationPlanStatus.DEPLOYED
    assert deployed.deployed_at == clock()
    assert deployed.approved_at == approved.approved_at
    assert store.get_migration_plan(tid, p.id) == deployed
    assert [x.id for x in store.list_migration_plans(tid, status="DEPLOYED").items] == [p.id]
    assert [x.id for x in store.list_migration_plans(tid, scenario_id=scenario_v2.id).items] == [
        p.id
    ]
    assert store.list_migration_plans(tid, status=MigrationPlanStatus.DRAFT).items == []


@pytest.mark.parametrize(
    ("path", "then"),
    [
        ([], "DEPLOYED"),
        (["APPROVED"], "APPROVED"),
        (["APPROVED", "DEPLOYED"], "REJECTED"),
        (["APPROVED", "DEPLOYED"], "APPROVED"),
        (["REJECTED"], "APPROVED"),
        (["REJECTED"], "DRAFT"),
        ([], "DRAFT"),
    ],
)
def test_migration_plan_disallowed_transitions_conflict(
    store: ConfigStore, scenario_v2: Scenario, path: list[str], then: str
) -> None:
    tid = scenario_v2.tenant_id
    p = store.create_migration_plan(plan(scenario_v2))
    for status in path:
        store.transition_migration_plan(tid, p.id, status)
    before = store.get_migration_plan(tid, p.id)
    with pytest.raises(ConflictError):
        store.transition_migration_plan(tid, p.id, then)
    assert store.get_migration_plan(tid, p.id) == before


def test_migration_plan_rejection_and_edit_rules(store: ConfigStore, scenario_v2: Scenario) -> None:
    tid = scenario_v2.tenant_id
    draft = store.create_migration_plan(plan(scenario_v2))
    assert store.reject_migration_plan(tid, draft.id).status == MigrationPlanStatus.REJECTED
    approved = store.create_migration_plan(plan(scenario_v2))
    store.approve_migration_plan(tid, approved.id)
    with pytest.raises(ConflictError):
        store.update_migration_plan(approved)
    assert store.reject_migration_plan(tid, approved.id).status == MigrationPlanStatus.REJECTED
    with pytest.raises(InvalidInputError):
        store.transition_migration_plan(tid, approved.id, "SHIPPED")
    with pytest.raises(NotFoundError):
        store.approve_migration_plan(tid, uuid4())
    with pytest.raises(NotFoundError):
        store.approve_migration_plan(uuid4(), draft.id)
    with pytest.raises(InvalidInputError):
        store.create_migration_plan(plan(scenario_v2, to_version=3))
    with pytest.raises(InvalidInputError):
        store.create_migration_plan(plan(scenario_v2, status=MigrationPlanStatus.APPROVED))
    with pytest.raises(NotFoundError):
        store.create_migration_plan(plan(scenario_v2, scenario_id=uuid4()))
    assert store.delete_migration_plan(tid, draft.id) is True
    assert store.get_migration_plan(tid, draft.id) is None
    deployed = store.create_migration_plan(plan(scenario_v2))
    store.approve_migration_plan(tid, deployed.id)
    store.deploy_migration_plan(tid, deployed.id)
    with pytest.raises(ConflictError):
        store.delete_migration_plan(tid, deployed.id)


def test_concurrent_deploys_exactly_one_wins(store: ConfigStore, scenario_v2: Scenario) -> None:
    tid = scenario_v2.tenant_id
    p = store.create_migration_plan(plan(scenario_v2))
    store.approve_migration_plan(tid, p.id)
    outcomes: list[str] = []
    barrier = threading.Barrier(5)

    def deploy() -> None:
        barrier.wait()
        try:
            store.deploy_migration_plan(tid, p.id)
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=deploy) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 4 + ["won"]


def test_deployed_plans_can_be_swept_across_tenants(store: ConfigStore) -> None:
    expected: list[MigrationPlan] = []
    tenants = []
    for _ in range(3):
        a = store.create_agent(Agent(tenant_id=uuid4(), name="a"))
        tenants.append(a.tenant_id)
        sc = store.update_scenario(store.create_scenario(scenario(a)))
        for i in range(2):
            p = store.create_migration_plan(plan(sc))
            store.approve_migration_plan(sc.tenant_id, p.id)
            if i == 0:
                expected.append(store.deploy_migration_plan(sc.tenant_id, p.id))
        gone = store.update_scenario(store.create_scenario(scenario(a, name="gone")))
        hidden = store.create_migration_plan(plan(gone))
        store.approve_migration_plan(a.tenant_id, hidden.id)
        store.deploy_migration_plan(a.tenant_id, hidden.id)
        store.delete_scenario(a.tenant_id, gone.id)

    swept = all_pages(lambda c: store.list_deployed_migration_plans(limit=2, cursor=c))
    ours = [p for p in swept if p.tenant_id in set(tenants)]
    assert sorted(p.id for p in ours) == sorted(p.id for p in expected)
    assert len({p.id for p in swept}) == len(swept)
    assert all(p.status == MigrationPlanStatus.DEPLOYED for p in swept)
    keys = [(p.tenant_id, p.id) for p in swept]
    assert keys == sorted(keys)
    one = store.list_deployed_migration_plans(tenant_id=tenants[1])
    assert [p.id for p in one.items] == [expected[1].id]


def test_every_kind_of_item_of_another_tenant_behaves_as_missing(
    store: ConfigStore, agent: Agent, scenario_v2: Scenario
) -> None:
    stranger = uuid4()
    tid, aid = agent.tenant_id, agent.id
    made_rule = store.create_rule(rule(agent, embedding=vec(1.0), embedding_model="m"))
    tpl = store.create_template(Template(tenant_id=tid, agent_id=aid, name="hi", content="Hi"))
    var = store.create_variable(Variable(tenant_id=tid, agent_id=aid, name="order_id"))
    tool = store.create_tool_activation(ToolActivation(tenant_id=tid, agent_id=aid, tool_id="s"))
    made_plan = store.create_migration_plan(plan(scenario_v2))
    assert store.get_agent_by_name(stranger, agent.name) is None
    assert store.list_agents(stranger).items == []
    with pytest.raises(NotFoundError):
        store.update_agent(agent.model_copy(update={"tenant_id": stranger}))
    assert store.set_rule_embedding(stranger, made_rule.id, vec(0.0, 1.0), "m") is False
    assert store.set_scenario_embedding(stranger, scenario_v2.id, vec(0.0, 1.0), "m") is False
    assert store.list_scenarios(stranger, aid).items == []
    assert store.vector_search_scenarios(stranger, aid, vec(1.0)) == []
    assert store.delete_scenario(stranger, scenario_v2.id) is False
    with pytest.raises(NotFoundError):
        store.update_scenario(scenario_v2.model_copy(update={"tenant_id": stranger}))
    assert store.get_template(stranger, tpl.id) is None
    assert store.list_templates(stranger, aid).items == []
    assert store.delete_template(stranger, tpl.id) is False
    with pytest.raises(NotFoundError):
        store.update_template(tpl.model_copy(update={"tenant_id": stranger}))
    assert store.get_variable(stranger, var.id) is None
    assert store.get_variable_by_name(stranger, aid, "order_id") is None
    assert store.list_variables(stranger, aid).items == []
    assert store.delete_variable(stranger, var.id) is False
    with pytest.raises(NotFoundError):
        store.update_variable(var.model_copy(update={"tenant_id": stranger}))
    assert store.get_tool_activation(stranger, tool.id) is None
    assert store.get_tool_activation_for_tool(stranger, aid, "s") is None
    assert store.list_tool_activations(stranger, aid).items == []
    assert store.delete_tool_activation(stranger, tool.id) is False
    with pytest.raises(NotFoundError):
        store.update_tool_activation(tool.model_copy(update={"tenant_id": stranger}))
    assert store.get_migration_plan(stranger, made_plan.id) is None
    assert store.list_migration_plans(stranger).items == []
    assert store.list_deployed_migration_plans(tenant_id=stranger).items == []
    assert store.delete_migration_plan(stranger, made_plan.id) is False
    with pytest.raises(NotFoundError):
        store.transition_migration_plan(stranger, made_plan.id, "APPROVED")
    with pytest.raises(NotFoundError):
        store.update_migration_plan(made_plan.model_copy(update={"tenant_id": stranger}))
    with pytest.raises(NotFoundError):
        store.create_template(Template(tenant_id=stranger, agent_id=aid, name="x", content="x"))
    with pytest.raises(NotFoundError):
        store.create_variable(Variable(tenant_id=stranger, agent_id=aid, name="x"))
    with pytest.raises(NotFoundError):
        store.create_tool_activation(ToolActivation(tenant_id=stranger, agent_id=aid, tool_id="x"))
    with pytest.raises(NotFoundError):
        store.create_scenario(scenario(agent, tenant_id=stranger))
    assert store.get_rule(tid, made_rule.id) == made_rule
    assert store.get_template(tid, tpl.id) == tpl
    assert store.get_variable(tid, var.id) == var
    assert store.get_tool_activation(tid, tool.id) == tool
    assert store.get_migration_plan(tid, made_plan.id) == made_plan
    assert store.get_scenario(tid, scenario_v2.id) == scenario_v2


def test_an_identical_rule_vector_scores_exactly_one(store: ConfigStore, agent: Agent) -> None:
    query = vec(0.1, 0.2, 0.7, 0.3)
    made = store.create_rule(rule(agent, embedding=query, embedding_model="m"))
    found = store.vector_search_rules(agent.tenant_id, agent.id, query, min_score=1.0)
    assert [(r.id, s) for r, s in found] == [(made.id, 1.0)]


@pytest.mark.parametrize(
    "bad",
    [{"action_config": {"k": "a\ud800"}}, {"action_config": {"k\ud800": [1]}}],
    ids=["json-value", "json-key"],
)
def test_text_that_is_not_valid_unicode_is_invalid_input(
    store: ConfigStore, agent: Agent, bad: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        store.create_rule(rule(agent, **bad))
    assert store.list_rules(agent.tenant_id, agent.id).items == []


def test_search_hits_carry_their_embeddings_only_when_asked(
    store: ConfigStore, agent: Agent
) -> None:
    created = store.create_rule(rule(agent, embedding=vec(1.0, 2.0)))
    plain = store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0))
    assert [(r.id, r.embedding) for r, _ in plain] == [(created.id, None)]
    full = store.vector_search_rules(agent.tenant_id, agent.id, vec(1.0), include_embeddings=True)
    assert [(r.id, r.embedding) for r, _ in full] == [(created.id, created.embedding)]
    # Leaving it out of the hit leaves the stored rule as it was.
    stored = store.get_rule(agent.tenant_id, created.id)
    assert stored is not None
    assert stored.embedding == created.embedding
    made = store.create_scenario(scenario(agent, embedding=vec(0.0, 1.0)))
    hits = store.vector_search_scenarios(agent.tenant_id, agent.id, vec(0.0, 1.0))
    assert [(s.id, s.embedding) for s, _ in hits] == [(made.id, None)]
    hits = store.vector_search_scenarios(
        agent.tenant_id, agent.id, vec(0.0, 1.0), include_embeddings=True
    )
    assert [(s.id, s.embedding) for s, _ in hits] == [(made.id, made.embedding)]

"""The embedding backfill on real PostgreSQL, through a real worker and the fake API server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import pytest

from stores.config import Agent, Rule, Scenario
from stores.config.postgres import PostgresConfigStore
from stores.memory import Episode
from stores.memory.postgres import PostgresMemoryStore
from tests.fakes import OPENAI_EMBEDDINGS, FakeProviderServer, RecordedRequest, Reply, replies
from tests.integration.provider_tasks_support import RESULT_TIMEOUT, task_settings
from tests.integration.workers_support import running_worker
from workers import jobs, provider_registry
from workers.context import WorkerContext, install_context
from workers.locks import JobLock
from workers.settings import Settings
from workers.tasks import backfill

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

MODEL = "text-embedding-3-small"
OLD_MODEL = "text-embedding-ada-002"
DIMS = 1536


def vector(text: str) -> list[float]:
    return replies.fake_embedding(text, DIMS)


@dataclass(frozen=True)
class Row:
    kind: str
    tenant: UUID
    id: UUID
    text: str


@dataclass
class Seeded:
    """What :func:`seed` wrote: the rows that need an embedding, and those that do not."""

    todo: list[Row] = field(default_factory=list)
    current: list[Row] = field(default_factory=list)
    """Rules already embedded by the configured model: left alone."""
    bare_scenarios: list[Row] = field(default_factory=list)
    """Scenarios without an entry condition: nothing to embed."""


@dataclass
class Stores:
    config: PostgresConfigStore
    memory: PostgresMemoryStore

    def embedding_of(self, row: Row) -> tuple[list[float] | None, str | None]:
        item: Any
        if row.kind == "rule":
            item = self.config.get_rule(row.tenant, row.id)
        elif row.kind == "scenario":
            item = self.config.get_scenario(row.tenant, row.id)
        else:
            item = self.memory.get_episode(row.tenant, row.id)
        assert item is not None
        return item.embedding, item.embedding_model


@pytest.fixture
def stores(database_url: str) -> Iterator[Stores]:
    config = PostgresConfigStore.from_url(database_url, dimensions=DIMS)
    memory = PostgresMemoryStore.from_url(database_url, dimensions=DIMS)
    try:
        yield Stores(config, memory)
    finally:
        config.close()
        memory.close()


@pytest.fixture
def fake_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def fresh_backfill_state() -> Iterator[None]:
    backfill.reset_after_fork()
    yield
    provider_registry.close_providers()


@pytest.fixture
def worker_for(
    fresh_backfill_state: None,
) -> Iterator[Any]:
    """Start a worker (and install its context) for given settings; stop both after."""
    stack: list[Any] = []

    def start(settings: Settings) -> None:
        context = WorkerContext.build(settings)
        previous = install_context(context)
        running = running_worker(settings)
        running.__enter__()
        stack.append((running, context, previous))

    yield start
    for running, context, previous in reversed(stack):
        running.__exit__(None, None, None)
        install_context(previous)
        context.close()


def seed(stores: Stores) -> Seeded:
    """Rows of two tenants: embeddings missing, made by another model, or current."""
    seeded = Seeded()
    for t in range(2):
        tenant = uuid4()
        agent = stores.config.create_agent(Agent(tenant_id=tenant, name="support")).id

        def rule(text: str, tenant: UUID = tenant, agent: UUID = agent, **extra: Any) -> Row:
            item = stores.config.create_rule(
                Rule(
                    tenant_id=tenant,
                    agent_id=agent,
                    name=text[:40],
                    condition_text=text,
                    action_type="reply",
                    **extra,
                )
            )
            return Row("rule", tenant, item.id, text)

        def scenario(text: str | None, tenant: UUID = tenant, agent: UUID = agent) -> Row:
            item = stores.config.create_scenario(
                Scenario(tenant_id=tenant, agent_id=agent, name="s", entry_condition=text)
            )
            return Row("scenario", tenant, item.id, text or "")

        def episode(text: str, tenant: UUID = tenant, agent: UUID = agent, **extra: Any) -> Row:
            item = stores.memory.add_episode(
                Episode(tenant_id=tenant, agent_id=agent, content=text, **extra)
            )
            return Row("episode", tenant, item.id, text)

        old: dict[str, Any] = {"embedding": vector("stale"), "embedding_model": OLD_MODEL}
        seeded.todo += [rule(f"t{t}: the customer asks about refunds, case {i}") for i in range(3)]
        seeded.todo.append(rule(f"t{t}: embedded by the old model", **old))
        seeded.todo.append(scenario(f"t{t}: the customer wants to cancel"))
        seeded.todo += [episode(f"t{t}: the customer said hello {i}") for i in range(2)]
        seeded.todo.append(episode(f"t{t}: remembered with the old model", **old))
        seeded.current.append(
            rule(f"t{t}: already embedded", embedding=vector("kept"), embedding_model=MODEL)
        )
        seeded.bare_scenarios.append(scenario(None))
    return seeded


def run_backfill_task(**kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = backfill.embedding_backfill.delay(**kwargs).get(timeout=RESULT_TIMEOUT)
    return result


@pytest.mark.celery
def test_backfill_embeds_missing_and_other_model_rows_and_is_idempotent(
    stores: Stores,
    database_url: str,
    redis_url: str,
    fake_server: FakeProviderServer,
    worker_for: Any,
) -> None:
    seeded = seed(stores)
    worker_for(task_settings(redis_url, fake_server, database_url=database_url))

    first = run_backfill_task(batch_size=3, trigger="test")

    assert first["status"] == "ok"
    assert first["model"] == MODEL
    assert first["embedded"] == len(seeded.todo) == 16
    assert (first["rules_embedded"], first["scenarios_embedded"], first["episodes_embedded"]) == (
        8,
        2,
        6,
    )
    for row in seeded.todo:
        embedding, model = stores.embedding_of(row)
        assert model == MODEL
        assert embedding == pytest.approx(vector(row.text), abs=1e-6)
    for row in seeded.current:
        embedding, model = stores.embedding_of(row)
        assert model == MODEL
        assert embedding == pytest.approx(vector("kept"), abs=1e-6)
    for row in seeded.bare_scenarios:
        assert stores.embedding_of(row) == (None, None)
    # Pages of at most 3 rows, one request each; the SDK sent nothing twice.
    requests = fake_server.requests_for(OPENAI_EMBEDDINGS)
    assert all(len(r.body["input"]) <= 3 for r in requests)
    assert sum(len(r.body["input"]) for r in requests) == 16

    second = run_backfill_task(trigger="test")

    assert second["status"] == "ok"
    assert second["embedded"] == 0
    assert len(fake_server.requests_for(OPENAI_EMBEDDINGS)) == len(requests)
    # The backfilled rule is now found by vector search.
    row = seeded.todo[0]
    agent = stores.config.get_rule(row.tenant, row.id)
    assert agent is not None
    [(found, score)] = stores.config.vector_search_rules(
        row.tenant, agent.agent_id, vector(row.text), limit=1
    )
    assert found.id == row.id
    assert score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.celery
def test_a_run_that_finds_the_lock_taken_does_nothing(
    stores: Stores,
    database_url: str,
    redis_url: str,
    fake_server: FakeProviderServer,
    worker_for: Any,
) -> None:
    seeded = seed(stores)
    settings = task_settings(redis_url, fake_server, database_url=database_url)
    worker_for(settings)
    holder = WorkerContext.build(settings)
    try:
        with JobLock(holder.redis, jobs.EMBEDDING_BACKFILL, 60) as held:
            assert held
            result = run_backfill_task()
    finally:
        holder.close()

    assert result["status"] == "skipped"
    assert fake_server.requests_for(OPENAI_EMBEDDINGS) == []
    assert stores.embedding_of(seeded.todo[0]) == (None, None)


@pytest.mark.celery
def test_without_an_embedding_provider_it_does_nothing_and_says_so_once(
    stores: Stores,
    database_url: str,
    redis_url: str,
    worker_for: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seeded = seed(stores)
    worker_for(task_settings(redis_url, None, database_url=database_url))
    caplog.set_level(logging.INFO, logger="hearth.backfill")

    results = [run_backfill_task() for _ in range(3)]

    for result in results:
        assert result["status"] == "ok"
        assert result["embedded"] == 0
        assert result["reason"] == backfill.NOT_CONFIGURED
    notices = [r for r in caplog.records if backfill.NOT_CONFIGURED in r.getMessage()]
    assert len(notices) == 1
    assert stores.embedding_of(seeded.todo[0]) == (None, None)


def _embedder(server: FakeProviderServer) -> Any:
    from providers.openai_embeddings import OpenAIEmbeddingProvider

    return OpenAIEmbeddingProvider(
        api_key="sk-test", model=MODEL, base_url=server.openai_base_url, max_retries=0
    )


def test_a_refused_text_is_skipped_and_the_others_are_embedded(
    stores: Stores, fake_server: FakeProviderServer
) -> None:
    tenant, agent = uuid4(), uuid4()
    texts = ["first memory", "a memory the API refuses", "third memory"]
    rows = [
        stores.memory.add_episode(Episode(tenant_id=tenant, agent_id=agent, content=t))
        for t in texts
    ]

    def refuse_one(request: RecordedRequest) -> Reply:
        if texts[1] in request.body["input"]:
            return replies.bad_request(OPENAI_EMBEDDINGS, "input rejected")
        return replies.default_openai_embeddings(request)

    fake_server.set_default(OPENAI_EMBEDDINGS, refuse_one)
    with _embedder(fake_server) as embedder:
        result = backfill.backfill_embeddings(stores.config, stores.memory, embedder)

    assert result.embedded["episodes"] == 2
    assert result.refused == 1
    embedded = {
        e.id for e in (stores.memory.get_episode(tenant, r.id) for r in rows) if e and e.embedding
    }
    assert embedded == {rows[0].id, rows[2].id}


def test_a_text_edited_while_it_is_embedded_is_left_for_the_next_run(
    stores: Stores, fake_server: FakeProviderServer
) -> None:
    tenant = uuid4()
    agent = stores.config.create_agent(Agent(tenant_id=tenant, name="a")).id
    rule = stores.config.create_rule(
        Rule(tenant_id=tenant, agent_id=agent, name="r", condition_text="old text", action_type="x")
    )

    def edit_meanwhile(request: RecordedRequest) -> Reply:
        current = stores.config.get_rule(tenant, rule.id)
        assert current is not None
        stores.config.update_rule(current.model_copy(update={"condition_text": "new text"}))
        return replies.default_openai_embeddings(request)

    fake_server.set_default(OPENAI_EMBEDDINGS, edit_meanwhile)
    with _embedder(fake_server) as embedder:
        result = backfill.backfill_embeddings(stores.config, stores.memory, embedder)

    assert result.embedded["rules"] == 0
    assert result.changed == 1
    stored = stores.config.get_rule(tenant, rule.id)
    assert stored is not None
    assert stored.embedding is None


def test_a_rate_limit_ends_the_run_early_with_the_error(
    stores: Stores, fake_server: FakeProviderServer
) -> None:
    tenant, agent = uuid4(), uuid4()
    stores.memory.add_episode(Episode(tenant_id=tenant, agent_id=agent, content="later"))
    fake_server.enqueue(
        OPENAI_EMBEDDINGS, replies.rate_limited(OPENAI_EMBEDDINGS, retry_after="30")
    )

    with _embedder(fake_server) as embedder:
        result = backfill.backfill_embeddings(stores.config, stores.memory, embedder)

    assert result.total == 0
    assert result.interrupted is not None
    assert result.interrupted["type"] == "RateLimitError"
    assert result.interrupted["retry_after"] == 30.0
    assert len(fake_server.requests_for(OPENAI_EMBEDDINGS)) == 1


def test_a_spent_time_budget_stops_before_the_next_page(
    stores: Stores, fake_server: FakeProviderServer
) -> None:
    tenant, agent = uuid4(), uuid4()
    for i in range(3):
        stores.memory.add_episode(Episode(tenant_id=tenant, agent_id=agent, content=f"m{i}"))
    ticks = iter([0.0, 0.0, 0.0, 0.0, 100.0])

    with _embedder(fake_server) as embedder:
        result = backfill.backfill_embeddings(
            stores.config,
            stores.memory,
            embedder,
            batch_size=2,
            time_budget_seconds=10,
            monotonic=lambda: next(ticks),
        )

    # Rules and scenarios (nothing to do) and the first page of episodes fit the budget.
    assert result.embedded["episodes"] == 2
    assert result.budget_spent is True

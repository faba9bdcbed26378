"""Provider settings checked before anything is built or sent; schemas resolved by path."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from providers.errors import AuthenticationError, InvalidRequestError, RateLimitError
from workers import provider_registry
from workers.backoff import countdown_for
from workers.provider_registry import ProviderSettingsError
from workers.settings import Settings
from workers.tasks import providers as tasks
from workers.tasks.attempts import backoff_policy
from workers.tasks.schemas import resolve_schema, schema_path


class Outer(BaseModel):
    """A schema with a nested one, to resolve by ``module:Outer.Inner``."""

    class Inner(BaseModel):
        value: int

    inner: Inner


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def no_cached_providers() -> Iterator[None]:
    provider_registry.close_providers()
    yield
    provider_registry.close_providers()


def test_no_llm_provider_names_the_variable_to_set() -> None:
    with pytest.raises(ProviderSettingsError, match="HEARTH_LLM_PROVIDER"):
        provider_registry.llm_provider(settings())


def test_an_unknown_provider_is_refused_by_the_settings() -> None:
    with pytest.raises(ValidationError, match="llm_provider"):
        settings(llm_provider="mistral")
    with pytest.raises(ValidationError, match="embedding_provider"):
        settings(embedding_provider="cohere")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "gpt-4o"),
        ("anthropic", "sonnet"),
        ("openai", "claude-sonnet-4-6"),
        ("openai", "text-embedding-3-small"),
        ("openai", "gpt 4"),
    ],
)
def test_a_model_that_is_not_the_vendors_is_refused(provider: str, model: str) -> None:
    with pytest.raises(ProviderSettingsError, match="HEARTH_LLM_MODEL") as info:
        provider_registry.llm_spec(settings(llm_provider=provider, llm_model=model))
    assert info.value.error_type == "unknown_model"


@pytest.mark.parametrize(
    ("model", "dimensions", "fragment"),
    [
        ("text-embedding-4-huge", 1536, "not an embedding model hearth knows"),
        ("gpt-4o", 1536, "not an embedding model hearth knows"),
        ("text-embedding-ada-002", 1024, "cannot give"),
        ("text-embedding-3-small", 2000, "cannot give"),
    ],
)
def test_an_embedding_model_that_cannot_serve_the_schema_is_refused(
    model: str, dimensions: int, fragment: str
) -> None:
    values = settings(
        embedding_provider="openai", embedding_model=model, embedding_dimensions=dimensions
    )
    with pytest.raises(ProviderSettingsError, match=fragment):
        provider_registry.embedding_provider(values)


def test_no_embedding_provider_is_none_for_the_backfill_and_an_error_for_tasks() -> None:
    assert provider_registry.embedding_provider(settings()) is None
    with pytest.raises(ProviderSettingsError, match="HEARTH_EMBEDDING_PROVIDER"):
        provider_registry.require_embedding_provider(settings())


def test_a_missing_key_is_an_authentication_error_before_any_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
        provider_registry.llm_provider(settings(llm_provider="anthropic"))


def test_providers_are_built_once_per_process_with_sdk_retries_off() -> None:
    values = settings(
        llm_provider="openai",
        openai_api_key="sk-unit-test",
        embedding_provider="openai",
        embedding_dimensions=512,
    )

    llm = provider_registry.llm_provider(values)
    embedder = provider_registry.embedding_provider(values)

    assert provider_registry.llm_provider(values) is llm
    assert provider_registry.embedding_provider(values) is embedder
    assert embedder is not None
    assert embedder.dimensions == 512
    for built in (llm, embedder):
        assert built._client.max_retries == 0  # type: ignore[union-attr]
        assert "sk-unit-test" not in repr(built)
    provider_registry.reset_after_fork()
    assert provider_registry.llm_provider(values) is not llm


def test_a_spec_never_shows_its_key() -> None:
    spec = provider_registry.llm_spec(
        settings(llm_provider="anthropic", anthropic_api_key="sk-ant-secret")
    )
    assert "sk-ant-secret" not in repr(spec)


def test_schemas_resolve_from_either_path_form() -> None:
    path = schema_path(Outer)
    assert path == f"{__name__}:Outer"
    assert resolve_schema(path) is Outer
    assert resolve_schema(f"{__name__}.Outer") is Outer
    assert resolve_schema(f"{__name__}:Outer.Inner") is Outer.Inner


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("Outer", "dotted path"),
        ("", "dotted path"),
        ("os:system", "not a pydantic"),
        (f"{__name__}:_private", "private"),
        (f"{__name__}:Missing", "has no Missing"),
    ],
)
def test_bad_schema_paths_are_refused(path: str, fragment: str) -> None:
    with pytest.raises(InvalidRequestError, match=fragment):
        resolve_schema(path)


def test_a_schema_defined_in_a_function_has_no_path() -> None:
    class Local(BaseModel):
        x: int

    with pytest.raises(InvalidRequestError, match="inside a function"):
        schema_path(Local)
    with pytest.raises(InvalidRequestError, match="pydantic"):
        schema_path(dict)  # type: ignore[arg-type]


def test_task_countdowns_stay_below_the_broker_visibility_timeout() -> None:
    policy = backoff_policy(
        settings(broker_visibility_timeout_seconds=60, provider_task_deadline_seconds=600)
    )
    error = RateLimitError("slow down", retry_after=120.0)

    countdown = countdown_for(error, 1, elapsed=0.0, policy=policy)

    # The server asked for 120 s, but a Redis broker would redeliver after 60 s.
    assert countdown is not None
    assert countdown < 60
    assert policy.max_attempts == 6


def test_a_per_call_deadline_replaces_the_configured_one() -> None:
    assert backoff_policy(settings(), 5).deadline == 5.0
    assert backoff_policy(settings()).deadline == 600.0
    for bad in (0, -1, float("inf"), True, "10"):
        with pytest.raises(InvalidRequestError, match="deadline_seconds"):
            backoff_policy(settings(), bad)  # type: ignore[arg-type]


def test_the_worker_says_at_start_which_providers_it_will_use() -> None:
    level, message = tasks.describe_settings(
        settings(llm_provider="openai", embedding_provider="openai")
    )
    assert level == logging.INFO
    assert "LLM openai/" in message
    assert "embeddings openai/text-embedding-3-small (1536 dims)" in message

    level, message = tasks.describe_settings(settings(llm_provider="anthropic", llm_model="gpt-4o"))
    assert level == logging.WARNING
    assert "HEARTH_LLM_MODEL='gpt-4o'" in message
    assert "no embedding provider" in message

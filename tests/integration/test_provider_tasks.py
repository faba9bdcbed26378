"""Provider tasks on a real worker against the fake API server: results, retries, deadlines.

One worker and one fake server serve the whole module; each test scripts the replies it
needs and looks only at the requests it caused. The worker's backoff is fast (0.2 s first
ceiling, 4 attempts) so the retry schedules take about a second.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from providers.errors import AuthenticationError, RateLimitError
from tests.fakes import (
    ANTHROPIC,
    OPENAI_EMBEDDINGS,
    FakeProviderServer,
    RecordedRequest,
    Reply,
    replies,
)
from tests.integration.provider_tasks_support import RESULT_TIMEOUT, task_settings
from tests.integration.workers_support import running_worker
from workers.app import HearthCelery
from workers.tasks import providers as tasks
from workers.tasks.failures import ProviderTaskError

pytestmark = [pytest.mark.celery, pytest.mark.redis]

SLACK = 0.4
"""Seconds a retry may arrive after its countdown (broker round trip, worker timer)."""


class CityAnswer(BaseModel):
    """The schema of the structured-output tests."""

    city: str
    population_millions: float


@dataclass
class Api:
    """The fake server, seen from one test: only the requests that test caused."""

    server: FakeProviderServer
    marks: dict[str, int]

    def requests(self, api: str) -> list[RecordedRequest]:
        return self.server.requests_for(api)[self.marks[api] :]

    def gaps(self, api: str) -> list[float]:
        times = [r.received_at for r in self.requests(api)]
        return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(scope="module")
def worker(redis_server_url: str, fake_server: FakeProviderServer) -> Iterator[HearthCelery]:
    with running_worker(task_settings(redis_server_url, fake_server)) as app:
        yield app


@pytest.fixture
def api(fake_server: FakeProviderServer, worker: HearthCelery) -> Iterator[Api]:
    view = Api(
        fake_server, {a: len(fake_server.requests_for(a)) for a in (ANTHROPIC, OPENAI_EMBEDDINGS)}
    )
    yield view
    # A scripted reply left over would be served to the next test.
    assert fake_server.pending(ANTHROPIC) == 0
    assert fake_server.pending(OPENAI_EMBEDDINGS) == 0


def run(task: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = task.delay(*args, **kwargs).get(timeout=RESULT_TIMEOUT)
    return result


def fail(task: Any, *args: Any, **kwargs: Any) -> ProviderTaskError:
    """Run ``task``, which must end in FAILURE; the exception the client gets back."""
    async_result = task.delay(*args, **kwargs)
    with pytest.raises(ProviderTaskError) as info:
        async_result.get(timeout=RESULT_TIMEOUT)
    assert async_result.state == "FAILURE"
    assert isinstance(async_result.result, ProviderTaskError)
    return info.value


def test_generate_returns_the_response_as_json_from_one_request(api: Api) -> None:
    result = run(tasks.generate, "hello there", system_prompt="be brief", max_tokens=64)

    assert result["ok"] is True
    assert result["attempts"] == 1
    response = result["response"]
    assert response["text"] == "echo: hello there"
    assert response["provider"] == "anthropic"
    assert response["usage"]["input_tokens"] == 12
    assert response["request_id"].startswith("req_fake_")
    [request] = api.requests(ANTHROPIC)
    assert request.body["system"] == "be brief"
    assert request.body["max_tokens"] == 64


def test_the_task_runs_on_the_providers_queue(worker: HearthCelery, api: Api) -> None:
    async_result = tasks.generate.delay("which queue?")
    assert async_result.get(timeout=RESULT_TIMEOUT)["ok"] is True
    route = worker.amqp.router.route({}, tasks.generate.name)
    assert route["queue"].name == "providers"


def test_rate_limit_is_retried_no_sooner_than_retry_after(api: Api) -> None:
    api.server.enqueue(
        ANTHROPIC,
        replies.rate_limited(ANTHROPIC, retry_after="0.5"),
        replies.rate_limited(ANTHROPIC, retry_after="0.5"),
    )

    result = run(tasks.generate, "after the limit")

    assert result["ok"] is True
    assert result["attempts"] == 3
    # Exactly three requests: the SDK did not retry on its own (max_retries=0).
    assert len(api.requests(ANTHROPIC)) == 3
    for gap in api.gaps(ANTHROPIC):
        # The jitter ceilings (0.2 s, 0.4 s) are below retry-after, so it decides the wait.
        assert 0.5 <= gap < 0.5 + SLACK


@pytest.mark.parametrize(
    "fault",
    [replies.overloaded(ANTHROPIC), replies.server_error(ANTHROPIC)],
    ids=["529", "500"],
)
def test_transient_errors_are_retried_with_backoff_until_max_attempts(
    api: Api, fault: Reply
) -> None:
    api.server.enqueue(ANTHROPIC, *([fault] * 4))

    failure = fail(tasks.generate, "keeps failing")

    assert failure.attempts == 4
    assert failure.gave_up == "max_attempts"
    assert failure.retryable is True
    assert failure.error["type"] == "TransientProviderError"
    assert failure.error["status_code"] == fault.status
    assert len(api.requests(ANTHROPIC)) == 4
    # Full jitter under ceilings of 0.2, 0.4 and 0.8 s.
    for gap, ceiling in zip(api.gaps(ANTHROPIC), (0.2, 0.4, 0.8), strict=True):
        assert 0 <= gap < ceiling + SLACK


def test_a_transient_error_then_success_succeeds(api: Api) -> None:
    api.server.enqueue(OPENAI_EMBEDDINGS, replies.server_error(OPENAI_EMBEDDINGS))

    result = run(tasks.embed_batch, ["one", "two"])

    assert result["ok"] is True
    assert result["attempts"] == 2
    assert len(api.requests(OPENAI_EMBEDDINGS)) == 2


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (replies.unauthorized(ANTHROPIC), "AuthenticationError"),
        (replies.bad_request(ANTHROPIC), "InvalidRequestError"),
        (replies.model_not_found(ANTHROPIC), "ModelError"),
        (replies.anthropic_refusal(), "ContentFilterError"),
    ],
    ids=["401", "400", "404", "refusal"],
)
def test_other_errors_fail_fast_with_their_type(api: Api, fault: Reply, error_type: str) -> None:
    api.server.enqueue(ANTHROPIC, fault)

    failure = fail(tasks.generate, "fails at once")

    assert failure.attempts == 1
    assert failure.retryable is False
    assert failure.gave_up is None
    assert failure.error_type == error_type
    assert type(failure.provider_error()).__name__ == error_type
    assert len(api.requests(ANTHROPIC)) == 1
    assert "sk-ant-test-key" not in repr(failure.args)


def test_the_deadline_stops_retries_counted_from_the_first_attempt(api: Api) -> None:
    api.server.enqueue(
        ANTHROPIC,
        replies.rate_limited(ANTHROPIC, retry_after="0.6"),
        replies.rate_limited(ANTHROPIC, retry_after="0.6"),
    )

    failure = fail(tasks.generate, "in a hurry", deadline_seconds=1.0)

    # Attempt 2 starts at 0.6 s; waiting 0.6 s more would end past the 1 s deadline.
    assert failure.gave_up == "deadline"
    assert failure.attempts == 2
    assert failure.error["type"] == "RateLimitError"
    assert failure.error["retry_after"] == 0.6
    assert 0.6 <= failure.elapsed_seconds < 1.0 + SLACK
    assert len(api.requests(ANTHROPIC)) == 2


def test_structured_output_returns_the_parsed_data(api: Api) -> None:
    api.server.enqueue(
        ANTHROPIC, replies.anthropic_message('{"city": "Paris", "population_millions": 2.1}')
    )

    result = run(tasks.generate_structured, "biggest city?", tasks.schema_path(CityAnswer))

    assert result["ok"] is True
    assert result["data"] == {"city": "Paris", "population_millions": 2.1}
    [request] = api.requests(ANTHROPIC)
    schema = request.body["output_config"]["format"]["schema"]
    assert set(schema["properties"]) == {"city", "population_millions"}


def test_a_reply_not_matching_the_schema_fails_fast_with_the_raw_text(api: Api) -> None:
    api.server.enqueue(ANTHROPIC, replies.anthropic_message('{"city": "Paris"}'))

    failure = fail(tasks.generate_structured, "biggest city?", tasks.schema_path(CityAnswer))

    assert failure.attempts == 1
    assert failure.error["type"] == "StructuredOutputError"
    assert failure.error["raw_text"] == '{"city": "Paris"}'
    # The reply is customer text: kept in the stored fields, not in what logs show.
    assert "Paris" not in str(failure)


def test_embed_returns_a_vector_of_the_configured_size(api: Api) -> None:
    result = run(tasks.embed, "a sentence")

    assert result["ok"] is True
    assert result["model"] == "text-embedding-3-small"
    assert result["dimensions"] == 1536
    expected = replies.fake_embedding("a sentence", 1536)
    assert result["embedding"] == pytest.approx(expected, abs=1e-6)


def test_embed_batch_returns_one_vector_per_text_in_order(api: Api) -> None:
    texts = ["first", "second", "third"]

    result = run(tasks.embed_batch, texts)

    assert result["ok"] is True
    assert len(result["embeddings"]) == 3
    for text, vector in zip(texts, result["embeddings"], strict=True):
        assert vector == pytest.approx(replies.fake_embedding(text, 1536), abs=1e-6)


@pytest.mark.parametrize(
    ("task", "args", "kwargs", "fragment"),
    [
        (tasks.generate, ("",), {}, "prompt is empty"),
        (tasks.generate, ("   ",), {}, "prompt is empty"),
        (tasks.generate, ("x" * 2_000_000,), {}, "too long"),
        (tasks.generate, ("hi",), {"deadline_seconds": 0}, "deadline_seconds"),
        (tasks.generate_structured, ("hi", "builtins:dict"), {}, "not a pydantic"),
        (tasks.generate_structured, ("hi", "json.loads"), {}, "not a pydantic"),
        (tasks.generate_structured, ("hi", "no_such_module_x:Model"), {}, "cannot be imported"),
        (tasks.generate_structured, ("hi", "not a path"), {}, "dotted path"),
        (tasks.embed, ("",), {}, "text is empty"),
        (tasks.embed_batch, ([],), {}, "texts is empty"),
        (tasks.embed_batch, (["ok", ""],), {}, "texts[1] is empty"),
        (tasks.embed_batch, (["y" * 70_000],), {}, "too long"),
    ],
    ids=[
        "empty-prompt",
        "blank-prompt",
        "over-limit-prompt",
        "bad-deadline",
        "schema-not-pydantic",
        "schema-function",
        "schema-not-importable",
        "schema-not-a-path",
        "empty-text",
        "empty-batch",
        "empty-text-in-batch",
        "over-limit-text",
    ],
)
def test_bad_input_fails_before_any_network_call(
    api: Api, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any], fragment: str
) -> None:
    failure = fail(task, *args, **kwargs)

    assert failure.error["type"] == "InvalidRequestError"
    assert fragment in failure.error["message"]
    assert api.requests(ANTHROPIC) == []
    assert api.requests(OPENAI_EMBEDDINGS) == []


def test_the_failure_gives_back_the_typed_provider_error(api: Api) -> None:
    api.server.enqueue(ANTHROPIC, replies.unauthorized(ANTHROPIC))

    failure = fail(tasks.generate, "who am I?")

    error = failure.provider_error()
    assert isinstance(error, AuthenticationError)
    assert error.status_code == 401
    assert error.provider == "anthropic"


def test_the_failure_keeps_retry_after_through_json() -> None:
    error = RateLimitError("slow down", retry_after=2.5, status_code=429, provider="openai")
    failure = ProviderTaskError.from_error(error, attempts=3, elapsed=4.0, gave_up="deadline")

    rebuilt = ProviderTaskError(*json.loads(json.dumps(failure.args)))

    assert rebuilt.to_dict() == failure.to_dict()
    assert rebuilt.attempts == 3
    again = rebuilt.provider_error()
    assert isinstance(again, RateLimitError)
    assert again.retry_after == 2.5
    assert again.status_code == 429

"""Customer text stays out of task events, the result backend and the worker log.

A real worker with task events on runs a task that is retried and then fails, one that
fails with an error quoting its prompt, an embedding batch that fails, and one that
succeeds. Every event on the broker, every state the result backend wrote and every log
record are read: none holds a prompt, a system prompt, a text, or the generated reply.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.contrib.testing.worker import start_worker

from tests.fakes import ANTHROPIC, OPENAI_EMBEDDINGS, FakeProviderServer, Reply, replies
from tests.integration.provider_tasks_support import RESULT_TIMEOUT, task_settings
from tests.integration.test_provider_redaction import EventLog, backend_writes
from workers import redaction
from workers.app import HearthCelery, create_app
from workers.tasks import providers as tasks
from workers.tasks.failures import ProviderTaskError

pytestmark = [pytest.mark.celery, pytest.mark.redis]

WAIT = 30.0
PROMPT = "Customer Ada Lovelace asks about her overdue invoice 77-4411"
SYSTEM = "You are the billing assistant of the Analytical Engine company"
QUOTED = "Customer Grace Hopper reports a moth in relay 70 of panel F"
TEXTS = ["Mrs Somerville's address is 12 Hanover Square", "Her account number is 9930"]
BY_NAME = "Mr Babbage's card ends in 4242 and expires in March"
PRIVATE = (PROMPT, SYSTEM, QUOTED, *TEXTS, BY_NAME)


@contextmanager
def worker_logging_info(app: HearthCelery) -> Iterator[HearthCelery]:
    """A worker with task events on that logs at INFO, as deployed workers do: its
    "received" and "succeeded" lines are written."""
    app.conf.worker_send_task_events = True
    app.conf.task_send_sent_event = True
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "polling_interval": 0.1,
    }
    with start_worker(
        app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="INFO",
        shutdown_timeout=30,
    ):
        yield app


def quoting(status: int, text: str) -> Reply:
    """An Anthropic error whose message quotes ``text``, as some API errors do."""
    return Reply(
        status,
        {"type": "error", "error": {"type": "invalid_request_error", "message": f"bad: {text}"}},
    )


def test_prompts_reach_no_event_backend_write_or_log(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeProviderServer() as server:
        app = create_app(task_settings(redis_url, server))
        results_db = app.backend.client
        pubsub = results_db.pubsub()
        pubsub.psubscribe("celery-task-meta-*")
        server.enqueue(ANTHROPIC, replies.rate_limited(ANTHROPIC, retry_after="0.1"))
        server.enqueue(ANTHROPIC, replies.unauthorized(ANTHROPIC))
        server.enqueue(ANTHROPIC, quoting(400, QUOTED))
        server.enqueue(OPENAI_EMBEDDINGS, replies.unauthorized(OPENAI_EMBEDDINGS))
        with worker_logging_info(app), EventLog(app) as events:
            retried = tasks.generate.delay(PROMPT, system_prompt=SYSTEM)
            retried.get(timeout=RESULT_TIMEOUT, propagate=False)
            quoted = tasks.generate.apply_async(args=(QUOTED,))
            quoted.get(timeout=RESULT_TIMEOUT, propagate=False)
            batch = tasks.embed_batch.delay(TEXTS)
            batch.get(timeout=RESULT_TIMEOUT, propagate=False)
            succeeded = tasks.generate.delay(PROMPT).get(timeout=RESULT_TIMEOUT)
            # A client that knows the task by its name only.
            by_name = app.send_task(tasks.embed.name, args=[BY_NAME]).get(timeout=RESULT_TIMEOUT)
            deadline = time.monotonic() + WAIT
            while events.count("task-failed") < 3 or events.count("task-succeeded") < 2:
                assert time.monotonic() < deadline, f"events seen: {events.types()}"
                time.sleep(0.05)
        stored = [results_db.get(key) for key in results_db.keys("celery-task-meta-*")]
        writes = backend_writes(pubsub)
        pubsub.close()
        app.close()

    # The scenario happened: a retry then a failure, two fail-fast failures, a success.
    assert len(server.requests_for(ANTHROPIC)) == 4
    assert retried.state == quoted.state == batch.state == "FAILURE"
    assert isinstance(retried.result, ProviderTaskError)
    assert retried.result.attempts == 2
    assert isinstance(quoted.result, ProviderTaskError)
    assert "[redacted]" in quoted.result.message
    assert succeeded["response"]["text"] == f"echo: {PROMPT}"
    assert by_name["dimensions"] == 1536
    received = [e for e in events.events if e.get("type") == "task-received"]
    retry_received = [e for e in received if e.get("retries") == 1]
    assert retry_received, "the retried message was never received"
    assert all("<hidden: " in str(e["args"]) + str(e["kwargs"]) for e in received)
    succeeded_events = [e for e in events.events if e.get("type") == "task-succeeded"]
    assert [e["result"] for e in succeeded_events] == [redaction.HIDDEN_RESULT] * 2
    assert {"RETRY", "FAILURE", "SUCCESS"} <= {json.loads(w)["status"] for w in writes}

    failures = "\n".join(w for w in writes if json.loads(w)["status"] != "SUCCESS")
    shown = {
        "exceptions": "".join(
            repr(r.result.args) + str(r.result) + str(r.traceback) for r in (retried, quoted, batch)
        ),
        "backend writes": failures,
        "backend keys": "\n".join(
            value.decode() for value in stored if value and json.loads(value)["status"] != "SUCCESS"
        ),
        "events": json.dumps(events.events, default=str),
        "log": caplog.text + "\n".join(_record_text(record) for record in caplog.records),
    }
    for where, text in shown.items():
        for private in PRIVATE:
            assert private not in text, f"{private!r} leaked into the {where}"
    # The successful reply is the caller's, in the backend only.
    assert redaction.HIDDEN_RESULT in shown["log"]
    for where in ("events", "log"):
        assert f"echo: {PROMPT}" not in shown[where]


def _record_text(record: logging.LogRecord) -> str:
    return str({k: v for k, v in vars(record).items() if k not in ("args",)})


def test_private_reprs_hide_private_arguments_by_name_and_position() -> None:
    def call(prompt: str, max_tokens: int = 10, *, system_prompt: str | None = None) -> None:
        del prompt, max_tokens, system_prompt

    argsrepr, kwargsrepr = redaction.private_reprs(
        call, ("secret prompt", 64), {"system_prompt": "secret system"}, {"prompt", "system_prompt"}
    )

    assert "secret" not in argsrepr + kwargsrepr
    assert argsrepr == "('<hidden: 13 characters>', 64)"
    assert kwargsrepr == "{'system_prompt': '<hidden: 13 characters>'}"

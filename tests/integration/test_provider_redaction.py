"""No credential leaves a worker: not in results, stored exceptions, task events or logs.

The fake server echoes the keys in every field it has: the error body's type and message,
the request-id header, a header of its own. A real worker (task events on) runs a task that
is retried once and then fails fast, and one that fails with an unexpected exception whose
message names the keys. The test reads every state the result backend wrote (through the
backend's own publish of each write), every event on the broker, and every log record.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from tests.fakes import ANTHROPIC, FakeProviderServer, Reply
from tests.integration.provider_tasks_support import RESULT_TIMEOUT, task_settings
from tests.integration.redaction_support import BEARER, CONFIGURED_KEY, ECHOED_KEY, SECRETS
from workers.app import HearthCelery, celery_url, create_app
from workers.tasks import providers as tasks
from workers.tasks.failures import ProviderTaskError

pytestmark = [pytest.mark.celery, pytest.mark.redis]

WAIT = 30.0


def echoing(status: int) -> Reply:
    """An Anthropic error with the keys in every field."""
    return Reply(
        status,
        {
            "type": "error",
            "error": {
                "type": f"error_for_{CONFIGURED_KEY}",
                "message": f"key {CONFIGURED_KEY} or {ECHOED_KEY} refused; Bearer {BEARER}",
            },
        },
        {
            "request-id": CONFIGURED_KEY,
            "x-request-id": ECHOED_KEY,
            "x-echo": f"Bearer {BEARER}",
            "retry-after": "0.1",
        },
    )


class EventLog:
    """Every event on the broker, captured by a receiver in a thread of its own."""

    def __init__(self, app: HearthCelery) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.app.connection_for_read() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self.events.append})
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def types(self) -> set[str]:
        return {str(event.get("type")) for event in list(self.events)}

    def count(self, kind: str) -> int:
        return sum(1 for event in list(self.events) if event.get("type") == kind)

    def __enter__(self) -> EventLog:
        self._thread.start()
        # Events are fire-and-forget: wait until the receiver hears one of our own.
        deadline = time.monotonic() + WAIT
        with self.app.events.default_dispatcher() as dispatcher:
            while "hearth-probe" not in self.types():
                assert time.monotonic() < deadline, "the event receiver never started"
                dispatcher.send("hearth-probe")
                time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=WAIT)


@contextmanager
def worker_with_events(app: HearthCelery) -> Iterator[HearthCelery]:
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
        loglevel="WARNING",
        shutdown_timeout=30,
    ):
        yield app


def backend_writes(pubsub: Any) -> list[str]:
    """Every state the Redis result backend wrote (it publishes each write on its key)."""
    writes = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        if message["type"] == "pmessage":
            writes.append(message["data"].decode())
    return writes


def test_keys_echoed_by_the_server_reach_no_result_event_or_log(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    results = celery_url(redis_url)
    watcher = redis.Redis.from_url(redis_url)
    pubsub = watcher.pubsub()
    pubsub.psubscribe("celery-task-meta-*")
    caplog.set_level(logging.DEBUG)
    with FakeProviderServer() as server:
        app = create_app(
            task_settings(
                redis_url,
                server,
                broker_url=results,
                result_backend=results,
                anthropic_api_key=CONFIGURED_KEY,
            )
        )
        server.enqueue(ANTHROPIC, echoing(429), echoing(401))
        with worker_with_events(app), EventLog(app) as events:
            retried = tasks.generate.delay("please answer")
            retried.get(timeout=RESULT_TIMEOUT, propagate=False)
            failed = tasks.generate_structured.delay(
                "please answer", "tests.integration.redaction_support:Anything"
            )
            failed.get(timeout=RESULT_TIMEOUT, propagate=False)
            deadline = time.monotonic() + WAIT
            while (
                not {"task-retried", "task-failed"} <= events.types()
                or events.count("task-failed") < 2
            ):
                assert time.monotonic() < deadline, f"events seen: {events.types()}"
                time.sleep(0.05)
        stored = [watcher.get(key) for key in watcher.keys("celery-task-meta-*")]
        writes = backend_writes(pubsub)
    pubsub.close()
    watcher.close()
    app.close()

    # The scenario happened: a retry, a fail-fast failure, and an unexpected exception.
    assert len(server.requests_for(ANTHROPIC)) == 2
    assert CONFIGURED_KEY in str(server.requests_for(ANTHROPIC)[0].headers)
    assert retried.state == "FAILURE"
    assert isinstance(retried.result, ProviderTaskError)
    assert retried.result.attempts == 2
    assert retried.result.error_type == "AuthenticationError"
    assert failed.state == "FAILURE"
    states = [json.loads(write)["status"] for write in writes]
    assert {"RETRY", "FAILURE"} <= set(states)
    failures = [json.loads(w) for w in writes if json.loads(w)["status"] == "FAILURE"]
    failure = next(f for f in failures if f["result"]["exc_type"] == "RuntimeError")
    assert "[redacted]" in failure["traceback"]

    shown = {
        "result": repr(retried.result.args) + str(retried.result),
        "exception": repr(failed.result) + str(failed.traceback),
        "backend writes": "\n".join(writes),
        "backend keys": "\n".join(value.decode() for value in stored if value),
        "events": json.dumps(events.events, default=str),
        "log": caplog.text + "\n".join(str(vars(record)) for record in caplog.records),
    }
    assert "[redacted]" in shown["events"]
    for where, text in shown.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into the {where}"

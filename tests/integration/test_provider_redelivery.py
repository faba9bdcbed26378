"""A provider task whose worker process dies in every call is given up after the cap.

A real ``celery worker`` (prefork, one pool process) runs in a subprocess against the test
broker and the loopback fake, which never answers: each call hangs until the test SIGKILLs
the pool process making it. The broker delivers the message again each time (``acks_late``
and ``reject_on_worker_lost``); after ``HEARTH_PROVIDER_MAX_DELIVERIES`` lost deliveries
the next one fails without calling the provider, and its message is acknowledged.

Nothing here is timed: the test waits for events (a request arriving, a state stored) with
generous limits, so a loaded machine only makes it slower.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from kombu import Queue

from tests.fakes import ANTHROPIC, FakeProviderServer, replies
from tests.fakes.replies import FAKE_ANTHROPIC_MODEL
from tests.integration.metrics_support import free_port, scrape, value
from tests.integration.workers_support import BROKERS, settings
from workers.app import HearthCelery, celery_url, create_app
from workers.deliveries import RedeliveryLimitError, delivery_key

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.slow]

MAX_DELIVERIES = 3
GENERATE = "hearth.providers.generate"
PROMPT = "a prompt that must never show in the failure"
WAIT = 90.0
"""Seconds to wait for any one event; far beyond what a loaded machine needs."""


def _wait_for(what: str, condition: Callable[[], bool], worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert worker.poll() is None, f"the worker exited while waiting for {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: the fields follow the last ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


@contextmanager
def worker_process(env: dict[str, str], queue: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``celery worker`` with one prefork pool process consuming ``queue``; stopped on exit."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        f"--queues={queue}",
        f"--hostname=redelivery-{uuid.uuid4().hex[:8]}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]
    with log.open("wb") as out:
        worker = subprocess.Popen(
            command, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield worker
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=WAIT)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()


def _messages_waiting(app: HearthCelery, queue: str) -> int:
    with app.connection_for_write() as conn:
        # Declaring our own queue again is harmless, and a Redis list that is empty is gone.
        declared = Queue(queue, routing_key=queue)(conn.default_channel).queue_declare()
        return int(declared.message_count)


@pytest.mark.parametrize("broker", BROKERS)
def test_a_call_that_kills_its_worker_every_time_is_given_up_after_the_cap(
    broker: str, redis_url: str, tmp_path: Path
) -> None:
    results = celery_url(redis_url)
    broker_url = results if broker == "redis" else os.environ["HEARTH_TEST_BROKER_URL"]
    queue = f"hearth-test-redelivery-{uuid.uuid4().hex[:10]}"
    port = free_port()
    with FakeProviderServer() as server:
        # No reply ever comes: every call hangs until its process is killed.
        server.set_default(ANTHROPIC, replies.slow(replies.anthropic_message("late"), 3600))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        env.update(
            HEARTH_REDIS_URL=redis_url,
            HEARTH_BROKER_URL=broker_url,
            HEARTH_RESULT_BACKEND=results,
            HEARTH_LLM_PROVIDER="anthropic",
            HEARTH_LLM_MODEL=FAKE_ANTHROPIC_MODEL,
            HEARTH_ANTHROPIC_API_KEY="sk-ant-redelivery-test-key",
            HEARTH_ANTHROPIC_BASE_URL=server.anthropic_base_url,
            HEARTH_PROVIDER_TIMEOUT_SECONDS="3600",
            HEARTH_PROVIDER_MAX_DELIVERIES=str(MAX_DELIVERIES),
            HEARTH_METRICS_PORT=str(port),
        )
        client_app = create_app(
            settings(redis_url=redis_url, broker_url=broker_url, result_backend=results)
        )
        log = tmp_path / "worker.log"
        try:
            with worker_process(env, queue, log) as worker:
                result = client_app.send_task(GENERATE, args=[PROMPT], queue=queue)
                for call in range(1, MAX_DELIVERIES + 1):
                    _wait_for(
                        f"call {call}",
                        lambda n=call: len(server.requests_for(ANTHROPIC)) >= n,
                        worker,
                    )
                    children = _children(worker.pid)
                    assert len(children) == 1, f"expected one pool process: {children}"
                    os.kill(children[0], signal.SIGKILL)

                _wait_for("the task to end", lambda: result.state == "FAILURE", worker)
                # The failure was acknowledged: nothing is left to deliver, now or later.
                assert _messages_waiting(client_app, queue) == 0
                # Counted by the pool processes that were killed after counting: their
                # counts outlive them.
                _, samples = scrape(port)
                lost = value(samples, "hearth_provider_redeliveries_total", task=GENERATE)
                assert lost == MAX_DELIVERIES
        finally:
            with client_app.connection_for_write() as conn:
                Queue(queue, routing_key=queue)(conn.default_channel).delete()
        calls = server.requests_for(ANTHROPIC)

    assert len(calls) == MAX_DELIVERIES, log.read_text(errors="replace")
    error = result.result
    assert isinstance(error, RedeliveryLimitError)
    assert f"delivered {MAX_DELIVERIES + 1} times" in str(error)
    assert f"lost {MAX_DELIVERIES} times" in str(error)
    assert PROMPT not in str(error)
    stored = redis.Redis.from_url(redis_url)
    try:
        meta = stored.get(f"celery-task-meta-{result.id}")
        counts = stored.hgetall(delivery_key(result.id))
    finally:
        stored.close()
    assert meta is not None
    assert b"RedeliveryLimitError" in meta
    assert PROMPT.encode() not in meta
    assert counts[b"l"] == str(MAX_DELIVERIES).encode()
    client_app.close()

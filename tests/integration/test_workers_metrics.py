"""``/metrics`` of a real worker: every family from the start, exact deltas after a sweep and
a provider call, cached gauges, and counters summed over a prefork pool's processes."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from stores.common.clock import ManualClock
from stores.sessions.redis import RedisSessionStore
from tests.fakes import ANTHROPIC, FakeProviderServer, replies
from tests.fakes.replies import FAKE_ANTHROPIC_MODEL
from tests.integration.metrics_support import Scrape, free_port, scrape, value
from tests.integration.provider_tasks_support import RESULT_TIMEOUT, task_settings
from tests.integration.workers_support import (
    BROKER_DB,
    running_worker,
    save_sessions,
    send,
    with_db,
)
from tests.integration.workers_support import settings as make_settings
from workers import jobs
from workers.app import HearthCelery, celery_url, create_app
from workers.context import WorkerContext, install_context
from workers.metrics import families
from workers.tasks import providers as tasks

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.postgres]

HOT_TTL = timedelta(minutes=30)
IDLE = 5
DEMOTE = jobs.TASK_NAMES[jobs.DEMOTE]
WORKER_ARGS = ("-P", "prefork", "-c", "2", "-Q", "providers", "--without-gossip")
WORKER_ARGS += ("--without-mingle", "--loglevel", "WARNING")
LABELS = {"provider": "anthropic", "model": FAKE_ANTHROPIC_MODEL}


def wait_for(port: int, check: Callable[[Scrape], bool], timeout: float = 10.0) -> Scrape:
    """Scrape until ``check`` holds (the gauge collector runs on its own interval)."""
    deadline = time.monotonic() + timeout
    while True:
        _, samples = scrape(port)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, "the gauges never reached the expected values"
        time.sleep(0.05)


@pytest.fixture(scope="module", autouse=True)
def _results_collected_while_redis_runs(redis_server_url: str) -> Iterator[None]:
    # A task result (AsyncResult) sits in a reference cycle: the cyclic GC frees it, at any
    # later moment, and its finaliser unsubscribes from the result backend. Collected after
    # the session's Redis stopped, that fails inside whatever the interpreter was doing then.
    yield
    gc.collect()


@pytest.fixture
def fake_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def test_a_worker_serves_every_family_and_counts_a_sweep_and_a_provider_call_exactly(
    redis_server_url: str,
    redis_url: str,
    database_url: str,
    clock: ManualClock,
    fake_server: FakeProviderServer,
) -> None:
    port = free_port()
    store = RedisSessionStore.from_url(
        redis_url,
        hot_ttl=HOT_TTL,
        cold_tier="postgres",
        database_url=database_url,
        clock=clock,
    )
    context = WorkerContext.build(
        make_settings(
            redis_url=redis_url,
            database_url=database_url,
            session_hot_ttl_seconds=int(HOT_TTL.total_seconds()),
            sweep_shards=1,
        ),
        clock=clock,
        sessions=store,
    )
    previous = install_context(context)
    app_settings = task_settings(
        redis_server_url,
        fake_server,
        metrics_port=port,
        metrics_collect_interval_seconds=0.2,
        # One shard: the sweep's result is the sweep's own, not a dispatch's.
        sweep_shards=1,
    )
    try:
        with running_worker(app_settings) as app:
            names, before = scrape(port)
            assert set(families.FAMILY_NAMES) <= names
            # In this process other tests' runs are counted too: only deltas are this test's.
            demote_ok = (
                "hearth_sweep_runs_total",
                frozenset({"job": jobs.DEMOTE, "outcome": "ok"}.items()),
            )
            assert demote_ok in before

            save_sessions(store, IDLE)
            clock.advance(minutes=31)
            save_sessions(store, 2)
            wait_for(port, lambda s: value(s, "hearth_sessions_idle_backlog") == IDLE)
            _, waiting = scrape(port)
            assert value(waiting, "hearth_sessions_oldest_idle_seconds") == 31 * 60

            result = send(app, DEMOTE)
            assert (result["status"], result["demoted"]) == ("ok", IDLE)

            _, after = scrape(port)
            for outcome in families.OUTCOMES:
                delta = value(
                    after, "hearth_sweep_runs_total", job=jobs.DEMOTE, outcome=outcome
                ) - value(before, "hearth_sweep_runs_total", job=jobs.DEMOTE, outcome=outcome)
                assert delta == (1 if outcome == "ok" else 0), outcome
            items = value(after, "hearth_sweep_items_total", job=jobs.DEMOTE) - value(
                before, "hearth_sweep_items_total", job=jobs.DEMOTE
            )
            assert items == IDLE
            runs = value(after, "hearth_sweep_duration_seconds_count", job=jobs.DEMOTE)
            assert runs - value(before, "hearth_sweep_duration_seconds_count", job=jobs.DEMOTE) == 1
            demote_calls = value(
                after,
                "hearth_store_operation_seconds_count",
                store="sessions",
                operation="demote_idle",
            )
            assert demote_calls >= 1

            gauges = wait_for(
                port,
                lambda s: (
                    value(s, "hearth_sessions", tier="cold") == IDLE
                    and value(s, "hearth_sessions_idle_backlog") == 0
                ),
            )
            assert value(gauges, "hearth_sessions", tier="hot") == 2
            # The two sessions left hot were saved at the current time.
            assert value(gauges, "hearth_sessions_oldest_idle_seconds") == 0
            assert value(gauges, "hearth_session_bytes", tier="cold") > 0

            fake_server.enqueue(
                ANTHROPIC,
                replies.rate_limited(ANTHROPIC, retry_after="0.1"),
                replies.anthropic_message(
                    "counted", input_tokens=40, output_tokens=9, cache_read_input_tokens=25
                ),
            )
            reply = tasks.generate.delay("count me").get(timeout=RESULT_TIMEOUT)
            assert reply["attempts"] == 2
            usage = reply["response"]["usage"]
            assert usage["output_tokens"] == 9
            assert usage["cached_input_tokens"] == 25

            _, done = scrape(port)

            def delta(name: str, **labels: str) -> float:
                return value(done, name, **LABELS, **labels) - value(
                    after, name, **LABELS, **labels
                )

            assert delta("hearth_provider_requests_total", outcome="ok") == 1
            assert delta("hearth_provider_requests_total", outcome=families.RATE_LIMITED) == 1
            assert delta("hearth_provider_request_seconds_count") == 2
            assert delta("hearth_provider_tokens_total", kind="input") == usage["input_tokens"]
            assert delta("hearth_provider_tokens_total", kind="output") == 9
            assert delta("hearth_provider_tokens_total", kind="cached") == 25
            retries = value(
                done, "hearth_provider_retries_total", provider="anthropic", reason="RateLimitError"
            ) - value(
                after,
                "hearth_provider_retries_total",
                provider="anthropic",
                reason="RateLimitError",
            )
            assert retries == 1
        # The worker stopped its endpoint with it.
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0
    finally:
        install_context(previous)
        context.close()
        store.close()


def counter_pids(directory: Path) -> set[int]:
    return {int(p.stem.split("_")[-1]) for p in directory.glob("hearth-metrics-*/counter_*.db")}


@pytest.mark.slow
def test_a_prefork_pool_sums_the_counters_of_its_processes(
    redis_server_url: str, redis_url: str, fake_server: FakeProviderServer, tmp_path: Path
) -> None:
    port = free_port()
    broker = celery_url(with_db(redis_server_url, BROKER_DB))
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TMPDIR": str(tmp_path),
        "HEARTH_REDIS_URL": redis_url,
        "HEARTH_BROKER_URL": broker,
        "HEARTH_RESULT_BACKEND": broker,
        "HEARTH_METRICS_PORT": str(port),
        "HEARTH_LLM_PROVIDER": "anthropic",
        "HEARTH_LLM_MODEL": FAKE_ANTHROPIC_MODEL,
        "HEARTH_ANTHROPIC_API_KEY": "sk-ant-test-key",
        "HEARTH_ANTHROPIC_BASE_URL": fake_server.anthropic_base_url,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # Two slow replies: the pool's two processes must each run one call at the same time.
    fake_server.enqueue(
        ANTHROPIC,
        replies.slow(replies.anthropic_message("one", output_tokens=3), 1.0),
        replies.slow(replies.anthropic_message("two", output_tokens=3), 1.0),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", *WORKER_ARGS],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    app = _client_app(redis_url, broker)
    app.control.purge()
    try:
        names, before = scrape(port)
        assert set(families.FAMILY_NAMES) <= names
        assert value(before, "hearth_provider_requests_total", outcome="ok", **LABELS) == 0
        results = [app.send_task(tasks.generate.name, args=[f"call {i}"]) for i in range(2)]
        assert [r.get(timeout=30)["ok"] for r in results] == [True, True]

        _, after = scrape(port)
        assert value(after, "hearth_provider_requests_total", outcome="ok", **LABELS) == 2
        assert value(after, "hearth_provider_tokens_total", kind="output", **LABELS) == 6
        children = counter_pids(tmp_path) - {worker.pid}
        assert len(children) == 2, "both pool processes should have counted a call"
    finally:
        app.close()
        worker.terminate()
        worker.wait(30)
    # The worker's main process removes its multiprocess directory when it exits.
    assert not list(tmp_path.glob("hearth-metrics-*"))


def _client_app(redis_url: str, broker: str) -> HearthCelery:
    return create_app(make_settings(redis_url=redis_url, broker_url=broker, result_backend=broker))

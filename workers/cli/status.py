"""``hearth status``: tiers, periodic jobs, schema, queues and Redis memory policy at a glance."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

import redis
import typer
from kombu import Connection
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from rich.console import Console
from rich.table import Table

from stores.sessions.clients import Client
from workers import jobs, locks, migrations, routing, schema_guard
from workers.cli.common import fail, resolved
from workers.cli.display import summary
from workers.context import build_session_store, redis_client
from workers.runtime import servers
from workers.settings import Settings, get_settings


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def tier_stats(settings: Settings) -> dict[str, Any]:
    """Sessions and bytes in each tier."""
    try:
        store = build_session_store(settings)
    except Exception as exc:
        return {"error": _error(exc)}
    try:
        return {**store.stats().model_dump(), "quarantined": store.count_quarantined()}
    except Exception as exc:
        return {"error": _error(exc)}
    finally:
        with contextlib.suppress(Exception):
            store.close()


def job_runs(client: Client, shards: int = 1) -> dict[str, Any]:
    """The last run of every periodic job and whether its lock is held now; for a sharded
    job (with more than one shard), the same for each of its ``shards`` under ``shards``."""
    out: dict[str, Any] = {}
    for job, run in jobs.last_runs(client).items():
        entry = _run_entry(client, job, run)
        entry["task"] = jobs.TASK_NAMES.get(job)
        if shards > 1 and job in jobs.SHARDED:
            names = tuple(jobs.run_name(job, i) for i in range(shards))
            entry["shards"] = [
                {"shard": i, **_run_entry(client, name, shard_run)}
                for i, (name, shard_run) in enumerate(jobs.last_runs(client, names).items())
            ]
        out[job] = entry
    return out


def _run_entry(client: Client, name: str, run: jobs.JobRun | None) -> dict[str, Any]:
    return {
        "last_run": None if run is None else run.model_dump(mode="json"),
        "running": locks.remaining_seconds(client, name) is not None,
    }


def queue_depths(settings: Settings) -> dict[str, Any]:
    """Messages waiting in each queue of the broker."""
    # Imported on use: workers.app builds the Celery app from settings when imported, and
    # every `hearth` command (and its --help) loads this module.
    from workers.app import broker_url, celery_config

    options = celery_config(settings)["broker_transport_options"]
    depths: dict[str, Any] = {}
    try:
        with Connection(broker_url(settings), transport_options=options) as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            channel: Any = conn.default_channel
            for name in routing.QUEUES:
                try:
                    depths[name] = int(
                        channel.queue_declare(queue=name, passive=True).message_count
                    )
                except conn.channel_errors:
                    # A queue nobody declared yet holds nothing.
                    depths[name] = 0
                    channel = conn.channel()
    except Exception as exc:
        return {"error": _error(exc)}
    return depths


def _memory_infos(client: Client) -> list[dict[str, Any]]:
    if not isinstance(client, RedisCluster):
        return [client.info("memory")]
    # Every master's own figures: one node's would hide a full or evicting other.
    answer: dict[str, Any] = client.info("memory", target_nodes=RedisCluster.PRIMARIES)
    if "used_memory" in answer:  # one master answers as itself, not per node
        return [answer]
    return [info for info in answer.values() if isinstance(info, dict)]


def redis_memory(client: Client) -> dict[str, Any]:
    """Memory use and eviction policy of the sessions Redis (an evicting policy loses sessions);
    on a Redis Cluster, the masters' sums and every policy they run."""
    out: dict[str, Any] = {}
    try:
        infos = _memory_infos(client)
        out["used_memory"] = sum(int(info.get("used_memory", 0)) for info in infos)
        out["maxmemory"] = sum(int(info.get("maxmemory", 0)) for info in infos)
        policies = sorted({str(p) for i in infos if (p := i.get("maxmemory_policy")) is not None})
        out["maxmemory_policy"] = ",".join(policies) or None
    except (redis.RedisError, RedisClusterException) as exc:
        out["error"] = _error(exc)
    if out.get("maxmemory_policy") is None and "error" not in out:
        with contextlib.suppress(redis.RedisError, RedisClusterException):
            value = client.config_get("maxmemory-policy").get("maxmemory-policy")
            out["maxmemory_policy"] = value
    return out


def gather(settings: Settings) -> dict[str, Any]:
    """Everything ``hearth status`` shows, as JSON-ready data."""
    report: dict[str, Any] = {}
    if settings.database_url:
        report["schema"] = schema_guard.as_result(migrations.status(settings.database_url))
    else:
        report["schema"] = {"state": "not-configured", "message": "no database configured"}
    report["sessions"] = tier_stats(settings)
    client = redis_client(settings)
    try:
        try:
            report["jobs"] = job_runs(client, settings.sweep_shards)
        except Exception as exc:
            report["jobs"] = {"error": _error(exc)}
        report["redis"] = redis_memory(client)
    finally:
        client.close()
    report["queues"] = queue_depths(settings)
    return report


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _when(value: str | None) -> str:
    if not value:
        return "never"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(report: dict[str, Any], console: Console) -> None:
    """Print the report as tables."""
    schema = report["schema"]
    style = "green" if schema["state"] == "current" else "red"
    console.print(f"[bold]schema[/]   [{style}]{schema['state']}[/]  {schema.get('message', '')}")

    sessions = report["sessions"]
    if "error" in sessions:
        console.print(f"[bold]sessions[/] [red]{sessions['error']}[/]")
    else:
        console.print(
            f"[bold]sessions[/] hot {sessions['hot_sessions']} ({_size(sessions['hot_bytes'])})"
            f"   cold {sessions['cold_sessions']} ({_size(sessions['cold_bytes'])})"
            + (
                f"   [red]quarantined {sessions['quarantined']} (cannot be demoted)[/]"
                if sessions.get("quarantined")
                else ""
            )
        )

    mem = report["redis"]
    if "error" in mem:
        console.print(f"[bold]redis[/]    [red]{mem['error']}[/]")
    else:
        policy = mem.get("maxmemory_policy") or "unknown"
        warn = "" if policy in ("noeviction", "unknown") else "  [red](evicts sessions!)[/]"
        limit = _size(mem["maxmemory"]) if mem.get("maxmemory") else "no limit"
        console.print(
            f"[bold]redis[/]    used {_size(mem.get('used_memory', 0))}, maxmemory {limit},"
            f" policy {policy}{warn}"
        )

    queues = report["queues"]
    if "error" in queues:
        console.print(f"[bold]queues[/]   [red]{queues['error']}[/]")
    else:
        console.print("[bold]queues[/]   " + "   ".join(f"{q} {n}" for q, n in queues.items()))

    runs = report["jobs"]
    if "error" in runs:
        console.print(f"[bold]jobs[/]     [red]{runs['error']}[/]")
        return
    table = Table(box=None, pad_edge=False, title="periodic jobs", title_justify="left")
    for column in ("job", "task", "last run", "status", "result", "took", "now"):
        table.add_column(column)
    for job, entry in runs.items():
        table.add_row(*_run_row(job, entry.get("task") or "", entry))
        for shard in entry.get("shards", []):
            table.add_row(*_run_row(f"  shard {shard['shard']}", "", shard))
    console.print(table)


def _run_row(label: str, task: str, entry: dict[str, Any]) -> tuple[str, ...]:
    """A row of the jobs table: a job's last run, or one shard's."""
    run = entry["last_run"]
    now = "[yellow]running[/]" if entry["running"] else ""
    if run is None:
        return (label, task, "never", "", "", "", now)
    took = (
        datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
    ).total_seconds()
    result = run["error"] or summary(run["result"])
    return (label, task, _when(run["finished_at"]), run["status"], result, f"{took:.2f}s", now)


def status(
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Show session tiers, each periodic job's last run, schema state, queue depths, Redis."""
    settings = resolved(get_settings())
    try:
        with servers(settings) as found:
            live = settings.model_copy(
                update={"database_url": found.database_url, "redis_url": found.redis_url}
            )
            if not settings.broker_url and found.broker_url:
                live = live.model_copy(update={"broker_url": found.broker_url})
            report = gather(live)
    except RuntimeError as exc:
        fail(str(exc), exc)
        return
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        render(report, Console())

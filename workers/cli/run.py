"""``hearth up``, ``hearth worker``, ``hearth beat``, ``hearth status``, ``hearth sweep``."""

from __future__ import annotations

import json
from typing import Any

import typer

from workers import jobs, routing, schema_guard
from workers.cli.common import LOGLEVEL, fail, resolved
from workers.cli.display import summary
from workers.cli.status import status
from workers.cli.up import up
from workers.settings import Settings, get_settings

sweep_app = typer.Typer(
    help="Run a sweep now, in this process, under the same lock as the scheduled one. Each "
    "command is named after its periodic job (the beat entry, and the job label of "
    "`hearth status` and the metrics).",
    no_args_is_help=True,
)


def _require_servers(settings: Settings, what: str) -> None:
    if not settings.redis_url:
        fail(
            f"{what} needs configured servers: set HEARTH_REDIS_URL and HEARTH_DATABASE_URL "
            "(or run `hearth up`, which starts embedded ones)"
        )


def worker(
    concurrency: int = typer.Option(
        0, "--concurrency", "-c", envvar="HEARTH_WORKER_CONCURRENCY", help="0: one per CPU"
    ),
    queues: str = typer.Option(
        ",".join(routing.QUEUES), "--queues", "-Q", envvar="HEARTH_WORKER_QUEUES"
    ),
    pool: str = typer.Option("prefork", "--pool", "-P", envvar="HEARTH_WORKER_POOL"),
    loglevel: str = LOGLEVEL,
) -> None:
    """Run a Celery worker (``celery -A workers.app worker``) on the configured servers.

    Refuses to start on a schema older than this code unless HEARTH_ALLOW_BEHIND_SCHEMA=true.
    """
    settings = get_settings()
    _require_servers(settings, "a worker")
    if settings.database_url:
        status = schema_guard.check(settings.database_url)
        try:
            schema_guard.enforce(status, allow_behind=settings.allow_behind_schema)
        except schema_guard.SchemaNotReadyError as exc:
            fail(str(exc))
    from workers.app import app

    argv = ["worker", f"--loglevel={loglevel.upper()}", f"--queues={queues}", f"--pool={pool}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    app.worker_main(argv)


def beat(
    schedule: str = typer.Option(
        "",
        "--schedule",
        "-s",
        envvar="HEARTH_BEAT_SCHEDULE",
        help="schedule state file (default: <data dir>/beat-schedule)",
    ),
    loglevel: str = LOGLEVEL,
) -> None:
    """Run the beat (``celery -A workers.app beat``). Run exactly one per deployment."""
    settings = get_settings()
    _require_servers(settings, "the beat")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = schedule or str(settings.data_dir / "beat-schedule")
    from workers.app import app

    app.start(["beat", f"--loglevel={loglevel.upper()}", f"--schedule={path}"])


def _sweep(job: str, dry_run: bool, batch_size: int, budget: float, shard: int | None) -> None:
    from workers.context import WorkerContext
    from workers.runtime import servers
    from workers.tasks import maintenance
    from workers.tasks.periodic import RunInfo

    settings = resolved(get_settings())
    with servers(settings) as found:
        live = settings.model_copy(
            update={"database_url": found.database_url, "redis_url": found.redis_url}
        )
        context = WorkerContext.build(live)
        try:
            result: dict[str, Any]
            if dry_run:
                sessions = context.sessions
                if job == "demote":
                    n = sessions.count_idle()
                    result = {"would_demote": n, "idle_for": f">= {live.hot_ttl}"}
                else:
                    n = sessions.count_expired()
                    result = {"would_purge": n, "older_than": str(live.max_age)}
            else:
                runs = maintenance.run_shards(
                    context,
                    jobs.DEMOTE if job == "demote" else jobs.PURGE,
                    only=shard,
                    batch_size=batch_size or None,
                    time_budget_seconds=budget or None,
                    info=RunInfo(trigger="cli"),
                    progress=_shard_progress,
                )
                if "shard" in runs[-1] and len(runs) == 1:
                    return  # its progress line said it all
                result = runs[0] if len(runs) == 1 else _total(runs)
        except ValueError as exc:
            fail(str(exc))
        finally:
            context.close()
    typer.echo(summary(result) or json.dumps(result))


def _shard_progress(result: dict[str, Any]) -> None:
    """One line per shard as it ends, when the sweep is sharded: ``shard i/n: counts``."""
    if "shard" in result:
        rest = {k: v for k, v in result.items() if k not in ("job", "shard", "shards")}
        typer.echo(f"shard {result['shard']}/{result['shards']}: {summary(rest)}")


def _total(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' runs summed up: the moved counts, and how many runs ended how."""
    total: dict[str, Any] = {"job": runs[0]["job"], "shards": len(runs)}
    for key in ("demoted", "purged"):
        if any(key in run for run in runs):
            total[key] = sum(int(run.get(key, 0)) for run in runs)
    for run in runs:
        total[run["status"]] = total.get(run["status"], 0) + 1
    total["complete"] = all(run.get("complete", True) for run in runs)
    return total


DRY_RUN = typer.Option(False, "--dry-run", help="count what would be done; change nothing")
BATCH = typer.Option(0, "--batch-size", help="sessions per batch (0: HEARTH_SWEEP_BATCH_SIZE)")
BUDGET = typer.Option(0.0, "--budget", help="seconds (0: HEARTH_SWEEP_TIME_BUDGET_SECONDS)")


SHARD = typer.Option(
    None,
    "--shard",
    min=0,
    help="sweep this shard only (0 to HEARTH_SWEEP_SHARDS - 1); default: every shard in turn",
)


def _names(job: str) -> str:
    return f"beat entry and job `{job}`, Celery task `{jobs.TASK_NAMES[job]}`"


@sweep_app.command(
    jobs.DEMOTE,
    help=f"""Demote hot sessions idle for
HEARTH_SESSION_HOT_TTL_SECONDS to the cold tier ({_names(jobs.DEMOTE)}).""",
)
def sweep_demote(
    dry_run: bool = DRY_RUN,
    batch_size: int = BATCH,
    budget: float = BUDGET,
    shard: int | None = SHARD,
) -> None:
    """Demote idle hot sessions to the cold tier."""
    _sweep("demote", dry_run, batch_size, budget, shard)


@sweep_app.command(
    jobs.PURGE,
    help=f"""Remove sessions older than
HEARTH_SESSION_MAX_AGE_SECONDS from every tier ({_names(jobs.PURGE)}).""",
)
def sweep_purge(
    dry_run: bool = DRY_RUN,
    batch_size: int = BATCH,
    budget: float = BUDGET,
    shard: int | None = SHARD,
) -> None:
    """Purge expired sessions from every tier."""
    _sweep("purge", dry_run, batch_size, budget, shard)


# The short names came first; scripts may still use them.
sweep_app.command("demote", help=f"The same as `hearth sweep {jobs.DEMOTE}`.")(sweep_demote)
sweep_app.command("purge", help=f"The same as `hearth sweep {jobs.PURGE}`.")(sweep_purge)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``hearth`` command line."""
    app.command()(up)
    app.command()(worker)
    app.command()(beat)
    app.command()(status)
    app.add_typer(sweep_app, name="sweep")

"""The Celery app: ``celery -A workers.app worker`` and ``celery -A workers.app beat``.

Configured from settings (``HEARTH_*``): a Redis or RabbitMQ broker, JSON only, UTC, two
queues, each on a direct exchange of its own name (``maintenance`` for the periodic sweeps,
``providers`` for slow LLM calls, so one never blocks the other). The broker's limit on an
unacknowledged delivery (a Redis visibility timeout, set for a Redis broker and result
backend only; RabbitMQ's ``consumer_timeout``, a server setting hearth is told of) caps
every task's countdown and run time. Results live in a Redis database of their own
(``HEARTH_RESULT_REDIS_DB`` on the sessions server, unless ``HEARTH_RESULT_BACKEND`` says
otherwise) and expire after ``HEARTH_RESULT_EXPIRES_SECONDS``. Nothing connects at import;
each worker process builds its stores on first use (``workers.context``) and closes them at
shutdown. A worker refuses to start on a schema older than this code unless
``HEARTH_ALLOW_BEHIND_SCHEMA`` is set, and on a database unreachable for longer than
``HEARTH_DATABASE_START_WAIT_SECONDS``. Credentials are redacted from every stored exception
and traceback, every task event and every log record, and customer text from task events
and logs (:mod:`workers.redaction`). With ``HEARTH_METRICS_PORT`` set, the worker's main
process serves Prometheus metrics at ``/metrics`` (:mod:`workers.metrics`).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from celery import Celery, bootsteps
from celery.app import backends
from kombu import Exchange, Queue
from pydantic import ValidationError

import beat_schedule
from stores.common.clock import utc_now
from stores.sessions.clients import from_url, is_cluster_url
from workers import context as worker_context
from workers import jobs, lifecycle, redaction, routing, schema_guard
from workers.metrics import server as metrics_server
from workers.migrations import SchemaState, SchemaStatus
from workers.settings import Settings, describe_invalid, get_settings
from workers.tasks import failures, task_modules

logger = logging.getLogger("hearth.worker")

# A client rebuilds a failed provider task's exception as its own class only when the class's
# module is already imported (Celery looks it up there): hence this import.
PROVIDER_TASK_ERROR = failures.ProviderTaskError

QUEUES = routing.QUEUES
REDIS_DB_SCHEMES = frozenset({"redis", "rediss", "unix"})
"""Redis URL schemes with database numbers (a cluster has only database 0)."""
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
"""Only used when neither HEARTH_BROKER_URL nor HEARTH_REDIS_URL is set."""


def celery_url(redis_url: str) -> str:
    """A redis-py URL as Celery/kombu spell it (``unix://path`` -> ``redis+socket://path``)."""
    parts = urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url
    db = parse_qs(parts.query).get("db", ["0"])[0]
    suffix = f"?virtual_host={db}" if db not in ("", "0") else ""
    return f"redis+socket://{parts.path}{suffix}"


def broker_url(settings: Settings) -> str:
    """The broker: HEARTH_BROKER_URL, else the sessions Redis."""
    if settings.broker_url:
        return celery_url(settings.broker_url)
    if settings.redis_url:
        return celery_url(settings.redis_url)
    return DEFAULT_BROKER_URL


def redis_db(redis_url: str) -> int:
    """The database number a redis-py URL names (``redis://h/3``, ``unix:///s?db=3``)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        raw = parse_qs(parts.query).get("db", ["0"])[0]
    else:
        raw = parts.path.strip("/") or "0"
    return int(raw) if raw.isdigit() else 0


def with_redis_db(redis_url: str, db: int) -> str:
    """``redis_url`` with database ``db`` (the same server, the same socket)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        query = [p for p in parts.query.split("&") if p and not p.startswith("db=")]
        # Spelled out: urlunsplit drops the "//" of a URL with no host ("unix:/path").
        return f"unix://{parts.netloc}{parts.path}?{'&'.join([*query, f'db={db}'])}"
    return urlunsplit(parts._replace(path=f"/{db}"))


class ResultDatabaseError(ValueError):
    """HEARTH_RESULT_REDIS_DB names the sessions' own Redis database."""


def result_backend(settings: Settings) -> str:
    """The result backend: HEARTH_RESULT_BACKEND, else a database of its own on the sessions
    Redis (HEARTH_RESULT_REDIS_DB), else the broker's.

    Raises:
        ResultDatabaseError: HEARTH_RESULT_REDIS_DB is the sessions' database.
    """
    if settings.result_backend:
        return celery_url(settings.result_backend)
    if settings.redis_url and urlsplit(settings.redis_url).scheme in REDIS_DB_SCHEMES:
        if redis_db(settings.redis_url) == settings.result_redis_db:
            raise ResultDatabaseError(
                f"HEARTH_RESULT_REDIS_DB={settings.result_redis_db} is the sessions' own Redis "
                "database; choose another, or set HEARTH_RESULT_BACKEND"
            )
        return celery_url(with_redis_db(settings.redis_url, settings.result_redis_db))
    if settings.redis_url and not is_cluster_url(settings.redis_url):
        return celery_url(settings.redis_url)
    broker = broker_url(settings)
    if urlsplit(broker).scheme in REDIS_DB_SCHEMES and redis_db(broker) != settings.result_redis_db:
        # Beside a cluster hot tier (no databases there, no Celery transport), results go to
        # a database of their own on the broker's Redis.
        return celery_url(with_redis_db(broker, settings.result_redis_db))
    return broker if broker.startswith(("redis", "rediss")) else "rpc://"


def task_queues() -> tuple[Queue, ...]:
    """hearth's queues, each bound to a direct exchange of its own name."""
    return tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES)


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration hearth runs with."""
    unacked_limit = settings.unacked_limit_seconds
    # Kill a task before the broker gives up on its unacknowledged message: past the limit a
    # Redis broker delivers it again beside the running copy, and RabbitMQ closes the
    # channel (and every other delivery on it).
    time_limit = max(unacked_limit - max(1, unacked_limit // 20), 1)
    redis_options = {"visibility_timeout": settings.broker_visibility_timeout_seconds}
    backend = result_backend(settings)
    return {
        "broker_url": broker_url(settings),
        "result_backend": backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "task_queues": task_queues(),
        "task_default_queue": routing.MAINTENANCE_QUEUE,
        "task_routes": (routing.route,),
        # A message unacknowledged for this long is redelivered by a Redis broker; every
        # task countdown stays below it, and a Redis result backend must agree. RabbitMQ
        # has no such option: its consumer_timeout (a server setting) plays that part.
        "broker_transport_options": {} if settings.broker_is_rabbitmq else redis_options,
        "result_backend_transport_options": (
            redis_options if backend.startswith(("redis", "rediss")) else {}
        ),
        "task_time_limit": time_limit,
        "result_expires": timedelta(seconds=settings.result_expires_seconds),
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Sweeps are long and few: a worker takes one message at a time per process.
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "beat_schedule": beat_schedule.build_schedule(settings),
        "beat_max_loop_interval": 30,
        "worker_hijack_root_logger": False,
    }


class HearthCelery(Celery):
    """A Celery app that knows the hearth settings it was made from.

    Its result backend and task events redact credentials (:mod:`workers.redaction`).
    """

    settings: Settings
    events_cls = "workers.redaction:RedactingEvents"

    def _get_backend(self) -> Any:
        # by_url gives (class, url); the type stubs say otherwise.
        found: Any = backends.by_url(self.backend_cls or self.conf.result_backend, self.loader)
        backend_cls, url = found
        return redaction.redacting_backend(backend_cls)(app=self, url=url)


class MetricsEndpoint(bootsteps.StartStopStep):
    """Serves ``/metrics`` from the worker's main process while the worker runs.

    A step rather than signal handlers: the worker stops its steps on every way out (a warm
    or cold shutdown, an embedded worker stopped by its caller), while ``worker_shutdown`` is
    not sent on all of them.
    """

    name = "hearth.MetricsEndpoint"
    requires = ("celery.worker.components:Pool",)

    def include_if(self, parent: Any) -> bool:
        settings = getattr(parent.app, "settings", None)
        return isinstance(settings, Settings) and bool(settings.metrics_port)

    def start(self, parent: Any) -> None:
        settings: Settings = parent.app.settings
        # Resolved here, in the main thread, not in the collector thread: that thread then
        # never holds the context lock while the pool forks a child.
        context = worker_context.get_context(settings)
        metrics_server.start_for_worker(settings, lambda: context)

    def stop(self, parent: Any) -> None:
        metrics_server.stop_for_worker()

    terminate = stop


def create_app(settings: Settings | None = None) -> HearthCelery:
    """A Celery app for ``settings`` (default: the environment), with every hearth task."""
    s = settings or get_settings()
    redaction.register_settings_keys(s)
    redaction.install_log_redaction()
    app = HearthCelery("hearth", include=task_modules(), set_as_current=True)
    app.settings = s
    app.config_from_object(celery_config(s))
    app.steps["worker"].add(SchemaGuard)
    app.steps["worker"].add(MetricsEndpoint)
    return app


class SchemaGuard(bootsteps.Step):
    """Checks the schema while the worker is built: a behind schema stops it from starting.

    Raising here (rather than in a signal handler, whose errors Celery only logs) makes
    ``celery worker`` exit before it consumes a single task; the refusal is a
    :class:`~workers.schema_guard.SchemaNotReadyError` (a ``SystemExit``), so the worker
    ends with the one sentence logged, status 1, and no traceback.
    """

    name = "hearth.SchemaGuard"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        settings: Settings = getattr(parent.app, "settings", None) or get_settings()
        guard_worker_start(settings, worker=getattr(parent, "hostname", None))


def guard_worker_start(settings: Settings, *, worker: str | None = None) -> dict[str, Any] | None:
    """Check the schema at worker start, keep the answer, and refuse a behind schema.

    An unreachable database is waited for, up to ``HEARTH_DATABASE_START_WAIT_SECONDS``,
    and then refused.

    Raises:
        SchemaNotReadyError: the schema is behind (and that is not allowed), or the
            database stayed unreachable.
    """
    if not settings.database_url:
        return None
    started_at = utc_now()
    wait = settings.database_start_wait_seconds

    def waiting(status: SchemaStatus) -> None:
        logger.warning("%s; waiting up to %.0f s for it", schema_guard.describe(status), wait)

    status = schema_guard.check_reachable(settings.database_url, wait_seconds=wait, on_wait=waiting)
    result = schema_guard.as_result(status)
    _record_start_check(settings, result, started_at, worker)
    message = schema_guard.describe(status)
    try:
        schema_guard.enforce_reachable(status, waited=wait)
        schema_guard.enforce(status, allow_behind=settings.allow_behind_schema)
    except schema_guard.SchemaNotReadyError as exc:
        logger.critical("%s", exc)
        raise
    if schema_guard.refuses(status):
        logger.warning("%s; starting anyway (HEARTH_ALLOW_BEHIND_SCHEMA)", message)
    elif status.state is SchemaState.CURRENT:
        logger.info(message)
    else:
        logger.warning(message)
    return result


def _record_start_check(
    settings: Settings, result: dict[str, Any], started_at: Any, worker: str | None
) -> None:
    if not settings.redis_url:
        return
    # A client of its own, closed at once: this runs in the parent of a prefork pool.
    client = from_url(settings.redis_url)
    try:
        jobs.record(
            client,
            jobs.JobRun(
                job=jobs.SCHEMA_CHECK,
                status=jobs.RunStatus.OK,
                started_at=started_at,
                finished_at=utc_now(),
                result=result,
                worker=worker,
                trigger="worker-start",
            ),
        )
    except Exception:
        logger.warning("could not record the schema check", exc_info=True)
    finally:
        with contextlib.suppress(Exception):
            client.close()


lifecycle.after_fork(worker_context.reset_after_fork)


@lifecycle.at_process_exit
def _process_exit(pid: int | None) -> None:
    worker_context.close_context()
    if pid is not None:
        metrics_server.process_exited(pid)


lifecycle.at_worker_exit(worker_context.close_context)


def _module_app() -> HearthCelery:
    # `celery -A workers.app` and the hearth commands import this module: invalid settings
    # end them with one sentence, not a validation traceback.
    try:
        settings = get_settings()
    except ValidationError as exc:
        raise SystemExit(f"hearth cannot start: {describe_invalid(exc)}") from None
    return create_app(settings)


app = _module_app()

"""hearth's settings: ``HEARTH_*`` environment variables and an optional ``.env`` file.

Only the deployable reads the environment; libraries (``stores``, ``providers``) take their
configuration as arguments, built here.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stores.postgres.schema import MAX_INDEXED_DIMENSIONS
from stores.postgres.tenant_indexes import check_build_memory
from stores.sessions.clients import is_cluster_url

AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
"""Broker URL schemes that mean RabbitMQ."""


class Settings(BaseSettings):
    """Every knob of a hearth deployment; each is also the env var ``HEARTH_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="HEARTH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset starts the embedded server"
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL for sessions; unset starts the embedded server"
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker URL (redis:// or amqp://); default: redis_url"
    )
    result_backend: str | None = Field(
        default=None, description="Celery result backend URL; default: redis_url"
    )
    data_dir: Path = Field(default=Path(".hearth"), description="where embedded servers keep data")

    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=10, ge=0, le=100)
    embedding_dimensions: int = Field(default=1536, ge=1, le=MAX_INDEXED_DIMENSIONS)

    session_hot_ttl_seconds: int = Field(default=30 * 60, ge=1)
    session_max_age_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    session_cold_tier: Literal["postgres", "redis"] | None = Field(
        default=None, description="postgres when a database is configured, else redis"
    )
    session_max_bytes: int = Field(default=1024 * 1024, ge=1024)

    demote_interval_seconds: float = Field(default=60.0, gt=0)
    purge_interval_seconds: float = Field(default=3600.0, gt=0)
    migration_check_interval_seconds: float = Field(default=600.0, gt=0)
    scenario_migration_interval_seconds: float = Field(default=300.0, gt=0)
    embedding_backfill_interval_seconds: float = Field(default=600.0, gt=0)
    tenant_index_interval_seconds: float = Field(default=3600.0, gt=0)
    tenant_index_min_rows: int = Field(
        default=20_000, ge=1, description="embedded rows a tenant needs for a vector index"
    )
    tenant_index_min_share: float = Field(
        default=0.2, gt=0, le=1, description="share of a table a tenant needs for an index"
    )
    tenant_index_keep_share: float = Field(
        default=0.1, gt=0, le=1, description="share below which a tenant's index is dropped"
    )
    tenant_index_build_memory: str = Field(
        default="1GB",
        description="maintenance_work_mem a tenant index build gets if the server's is smaller",
    )
    sweep_batch_size: int = Field(default=1000, ge=1, le=10_000)
    sweep_time_budget_seconds: float = Field(default=20.0, gt=0)
    sweep_shards: int = Field(
        default=8,
        ge=1,
        le=64,
        description="shards the demotion and purge sweeps are split into, one task each, "
        "so that workers share a sweep; 1 sweeps everything in one task",
    )
    allow_behind_schema: bool = Field(
        default=False, description="let workers start on a schema older than head"
    )
    database_start_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="how long a starting worker waits for an unreachable database before "
        "refusing to start",
    )

    result_redis_db: int = Field(
        default=1,
        ge=0,
        le=15,
        description="Redis database of task results, on the sessions Redis server, when "
        "HEARTH_RESULT_BACKEND is unset; must differ from the sessions database",
    )
    result_expires_seconds: int = Field(
        default=24 * 3600, ge=60, description="how long a task's result is kept"
    )
    broker_visibility_timeout_seconds: int = Field(
        default=3600,
        ge=60,
        description="Redis broker: a message unacknowledged this long is delivered again",
    )
    rabbitmq_consumer_timeout_seconds: int = Field(
        default=30 * 60,
        ge=60,
        description="RabbitMQ broker: the server's consumer_timeout (30 min by default); a "
        "delivery unacknowledged this long closes the channel and is delivered again",
    )
    provider_task_deadline_seconds: float = Field(default=600.0, gt=0)
    provider_max_attempts: int = Field(default=6, ge=1, le=50)
    provider_max_deliveries: int = Field(
        default=3,
        ge=1,
        le=100,
        description="deliveries of one provider task message lost with their worker before "
        "the task is given up",
    )
    provider_backoff_base_seconds: float = Field(
        default=1.0, gt=0, description="jitter ceiling of a provider task's first retry"
    )
    provider_backoff_max_seconds: float = Field(
        default=300.0, gt=0, description="largest jitter ceiling of a provider task's retries"
    )

    llm_provider: Literal["anthropic", "openai"] | None = None
    llm_model: str | None = None
    embedding_provider: Literal["openai"] | None = None
    embedding_model: str = "text-embedding-3-small"
    anthropic_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    openai_base_url: str | None = None
    provider_timeout_seconds: float = Field(default=60.0, gt=0)

    log_level: str = Field(default="INFO")

    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="port of each worker's Prometheus /metrics; unset or 0 serves none",
    )
    metrics_collect_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        description="how often a worker refreshes the tier, idle and backfill gauges",
    )

    @field_validator("tenant_index_build_memory")
    @classmethod
    def _build_memory(cls, value: str) -> str:
        return check_build_memory(value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(
                f"log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL; got {value}"
            )
        return level

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.tenant_index_keep_share > self.tenant_index_min_share:
            raise ValueError(
                "HEARTH_TENANT_INDEX_KEEP_SHARE must not exceed HEARTH_TENANT_INDEX_MIN_SHARE "
                f"({self.tenant_index_keep_share} > {self.tenant_index_min_share})"
            )
        # Celery has no Redis Cluster transport: the broker and the results need a server
        # of their own beside a cluster hot tier.
        for name, url in (
            ("HEARTH_BROKER_URL", self.broker_url),
            ("HEARTH_RESULT_BACKEND", self.result_backend),
        ):
            if url and is_cluster_url(url):
                raise ValueError(
                    f"{name} names a Redis Cluster, which Celery cannot use: "
                    "name a single Redis server or RabbitMQ"
                )
        if self.redis_url and is_cluster_url(self.redis_url) and not self.broker_url:
            raise ValueError(
                "HEARTH_REDIS_URL names a Redis Cluster, which Celery cannot use as its broker: "
                "set HEARTH_BROKER_URL to a separate Redis server or RabbitMQ"
            )
        return self

    @property
    def broker_is_rabbitmq(self) -> bool:
        """Whether the Celery broker is RabbitMQ (an ``amqp://`` URL) rather than Redis."""
        url = self.broker_url or self.redis_url or ""
        return url.split("://", 1)[0].lower() in AMQP_SCHEMES

    @property
    def unacked_limit_seconds(self) -> int:
        """How long the broker lets a delivered message stay unacknowledged.

        After it, the message is delivered again: a Redis broker's visibility timeout, or
        RabbitMQ's ``consumer_timeout``. A late-acknowledged task's countdown and run must
        end within it.
        """
        if self.broker_is_rabbitmq:
            return self.rabbitmq_consumer_timeout_seconds
        return self.broker_visibility_timeout_seconds

    @property
    def hot_ttl(self) -> timedelta:
        """How long a session may stay idle in the hot tier before the sweep demotes it."""
        return timedelta(seconds=self.session_hot_ttl_seconds)

    @property
    def max_age(self) -> timedelta:
        """How old (from creation) a session may get before it is purged from every tier."""
        return timedelta(seconds=self.session_max_age_seconds)


def describe_invalid(exc: ValidationError) -> str:
    """One sentence naming every invalid setting by its environment variable and why."""
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"HEARTH_{where.upper()}: {message}" if where else message)
    return "; ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

"""docker-compose.yml is valid and describes the deployment the design asks for."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def _compose() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("no compose client here (neither `docker compose` nor `docker-compose`)")


def _run(*args: str) -> str:
    done = subprocess.run(
        [*_compose(), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _service(config: str, name: str) -> str:
    """The block of one service in ``config`` output (two-space indented keys)."""
    match = re.search(rf"^  {name}:\n((?:    .*\n|\n)*)", config, flags=re.MULTILINE)
    assert match, f"no service {name}"
    return match.group(1)


@pytest.fixture(scope="module")
def config() -> str:
    """``compose config``: the file validated, resolved and printed back."""
    return _run("config")


def test_compose_config_passes_with_the_expected_services(config: str) -> None:
    for name in ("postgres", "redis", "migrate", "worker", "beat"):
        assert "profiles" not in _service(config, name)
    assert re.search(r"profiles:\n\s+- flower", _service(config, "flower"))


def test_compose_runs_one_beat_scaled_workers_after_a_one_shot_migration(config: str) -> None:
    assert re.search(r"replicas: 1\b", _service(config, "beat"))
    assert re.search(r"replicas: [2-9]", _service(config, "worker"))
    for name in ("worker", "beat"):
        assert "service_completed_successfully" in _service(config, name)
    assert "upgrade" in _service(config, "migrate")
    assert "pgvector/pgvector" in _service(config, "postgres")
    redis = _service(config, "redis")
    assert "--appendonly" in redis
    assert "noeviction" in redis
    for name in ("postgres", "redis"):
        assert "healthcheck" in _service(config, name)


def test_the_cluster_file_puts_sessions_on_a_formed_cluster_and_celery_off_it() -> None:
    done = subprocess.run(
        [
            *_compose(),
            "-f",
            str(COMPOSE_FILE),
            "-f",
            str(ROOT / "docker-compose.cluster.yml"),
            "--profile",
            "cluster",
            "config",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    for node in range(1, 7):
        node_block = _service(done.stdout, f"redis-node-{node}")
        assert "--cluster-require-full-coverage" in node_block
    for name in ("migrate", "worker", "beat"):
        block = _service(done.stdout, name)
        assert "redis-cluster-init" in block
        assert "HEARTH_REDIS_URL: redis+cluster://" in block
        # Celery has no cluster transport: broker and results stay on the single Redis.
        assert "HEARTH_BROKER_URL: redis://redis:6379/1" in block
        assert "HEARTH_RESULT_BACKEND: redis://redis:6379/2" in block


def test_the_monitoring_profile_scrapes_the_workers_metrics(config: str) -> None:
    # Off by default: both monitoring services run only under their profile...
    for name in ("prometheus", "grafana"):
        assert re.search(r"profiles:\n\s+- monitoring", _service(config, name)), name
    # ...while every worker serves its metrics on the port Prometheus scrapes.
    assert "HEARTH_METRICS_PORT: '9187'" in _service(config, "worker").replace('"', "'")
    assert "HEARTH_METRICS_PORT" not in _service(config, "beat")
    monitoring = _run("--profile", "monitoring", "config")
    prometheus = _service(monitoring, "prometheus")
    assert "deploy/prometheus" in prometheus
    grafana = _service(monitoring, "grafana")
    assert "deploy/grafana/provisioning" in grafana
    assert "deploy/grafana/dashboards" in grafana
    scrape = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    assert "port: 9187" in scrape
    assert 'names: ["worker"]' in scrape

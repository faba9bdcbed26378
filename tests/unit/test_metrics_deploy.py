"""deploy/: the alert rules and the dashboard ask only for metrics the workers serve, and
Prometheus' own checker accepts the rules and the scrape configuration."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from workers.metrics import families

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
BUILT_IN = {"up"}
"""Series Prometheus makes itself for every target."""


def served_series() -> set[str]:
    """Every series name the workers serve: counters end in ``_total``, histograms have
    ``_bucket``, ``_count`` and ``_sum``."""
    names = set(families.GAUGE_NAMES)
    for family in families.FAMILIES:
        metric = next(iter(family.describe()))
        if metric.type == "counter":
            names.add(f"{metric.name}_total")
        elif metric.type == "histogram":
            names.update(f"{metric.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(metric.name)
    return names


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    exprs = []
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [target["expr"] for target in panel.get("targets", [])]
    return exprs


def names_in(expr: str) -> set[str]:
    return set(re.findall(r"\bhearth_[a-z_]+\b", expr)) | (
        {"up"} if re.search(r"\bup\s*\{", expr) else set()
    )


def test_the_metric_name_scanner_sees_every_name() -> None:
    expr = 'sum(rate(hearth_a_total{x="y"}[5m])) / up{job="j"} and hearth_b > 1'
    assert names_in(expr) == {"hearth_a_total", "hearth_b", "up"}


def test_every_alert_asks_only_for_served_metrics() -> None:
    served = served_series() | BUILT_IN
    found = rules()
    assert len(found) >= 8
    for rule in found:
        used = names_in(rule["expr"])
        assert used, f"{rule['alert']} reads no metric"
        assert used <= served, f"{rule['alert']}: {sorted(used - served)} are not served"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}


def test_the_alerts_cover_sweep_lag_store_errors_rate_limits_and_backlogs() -> None:
    text = " ".join(rule["expr"] for rule in rules())
    for needed in (
        'hearth_sweep_runs_total{job="demote-idle-sessions"',
        "hearth_sessions_oldest_idle_seconds",
        "hearth_sessions_idle_backlog",
        "hearth_store_errors_total",
        'outcome="RateLimitError"',
        "hearth_embedding_backfill_backlog",
    ):
        assert needed in text, needed
    assert families.RATE_LIMITED == "RateLimitError"


def test_the_dashboard_shows_every_family_from_served_metrics() -> None:
    exprs = dashboard_exprs()
    served = served_series()
    used = set().union(*(names_in(e) for e in exprs))
    assert used <= served, sorted(used - served)
    shown = {name.removesuffix("_total") for name in used} | {
        re.sub(r"_(bucket|count|sum)$", "", name) for name in used
    }
    assert set(families.FAMILY_NAMES) <= shown, sorted(set(families.FAMILY_NAMES) - shown)


def test_the_scrape_keeps_the_metrics_own_job_label() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    [scrape] = config["scrape_configs"]
    # hearth_sweep_* carry a `job` label (the periodic job) that must not be renamed.
    assert scrape["honor_labels"] is True
    assert config["rule_files"] == ["alerts.yml"]


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool is not installed here")
def test_promtool_accepts_the_rules_and_the_configuration() -> None:
    for args in (
        ["check", "rules", str(PROMETHEUS / "alerts.yml")],
        ["check", "config", str(PROMETHEUS / "prometheus.yml")],
    ):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

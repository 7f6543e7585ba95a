"""The monitoring files: promtool checks, rule unit tests, and metric names used."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from stream.metrics import Metrics

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
DASHBOARD = MONITORING / "grafana" / "engagement-stream.json"
METRIC_NAME = re.compile(r"\bengagement_stream_[a-z_]+")

PROMTOOL = shutil.which("promtool")
# CI installs promtool (dev/install-prometheus.sh): there a missing one is a
# failure, not a reason to skip.
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool not installed: run dev/install-prometheus.sh",
)


def promtool(*args: str) -> str:
    assert PROMTOOL, "promtool is missing on CI: dev/install-prometheus.sh failed?"
    done = subprocess.run(
        [PROMTOOL, *args],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def exposed_names() -> set[str]:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    # Partition series exist only while partitions are assigned.
    metrics.on_assigned([("conversations", 0)])
    return {sample.name for family in registry.collect() for sample in family.samples}


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return {
        rule["alert"]: rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
    }


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


@needs_promtool
def test_promtool_accepts_the_rules():
    assert "SUCCESS: 5 rules found" in promtool("check", "rules", "alerts.yml")


@needs_promtool
def test_alert_rule_unit_tests_pass():
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


@needs_promtool
def test_promtool_accepts_the_compose_scrape_config():
    output = promtool("check", "config", "prometheus.yml")

    assert "SUCCESS: prometheus.yml is valid" in output


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]

    for alert in alert_expressions():
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == alert]
        assert any(expected), f"{alert}: no test where it fires"
        assert [] in expected, f"{alert}: no test where it stays quiet"


def test_compose_config_scrapes_the_worker():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]

    assert job["job_name"] == "engagement-stream"
    assert job["static_configs"] == [{"targets": ["worker:8080"]}]
    assert config["rule_files"] == ["alerts.yml"]


def test_alerts_name_only_metrics_the_worker_exposes():
    names = exposed_names()

    for alert, expr in alert_expressions().items():
        unknown = set(METRIC_NAME.findall(expr)) - names
        assert not unknown, f"{alert} uses unknown metrics {unknown}"


def test_dashboard_names_only_metrics_the_worker_exposes():
    names = exposed_names()
    exprs = dashboard_expressions()

    assert exprs
    for expr in exprs:
        unknown = set(METRIC_NAME.findall(expr)) - names
        assert not unknown, f"{expr!r} uses unknown metrics {unknown}"


def test_dashboard_takes_its_datasource_from_a_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}

    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    queried = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]

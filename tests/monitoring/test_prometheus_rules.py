"""The shipped Prometheus rules and Grafana dashboard (monitoring/prometheus, monitoring/grafana)
name only metrics the monitor exports; ``promtool`` accepts the rules and fires each alert from
sample series in rules_test.yml."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitoring.heartbeats import HeartbeatRun, record_heartbeat
from monitoring.metrics import (INVOCATION_TASKS_KEY, REDBEAT_PREFIX, RunMetrics, exposition,
                                invocation_window_key, metrics_registry)
from monitoring.monitor import DEFAULT_PORT
from tests.servers import missing

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
RULES_TEST = MONITORING / "prometheus" / "rules_test.yml"
DASHBOARD = MONITORING / "grafana" / "beatkeeper.json"
METRIC = re.compile(r"\bbeatkeeper_[a-z_]+\b")
NOW = 1_800_000_000.0


def exported_sample_names(redis_client) -> set[str]:
    """Every sample name of the monitor's /metrics body once each kind of metric has data."""
    metrics = RunMetrics(redis_client)
    metrics.record_run(entry="e", task="t", status="success", finished_at=NOW, duration_s=1.0, lateness_s=0.5)
    metrics.record_run(entry="e", task="t", status="skipped_overlap", finished_at=NOW)
    metrics.record_miss(entry="e")
    record_heartbeat(redis_client, HeartbeatRun(executed_at=NOW - 5, worker="w1", task_id="x", scheduled_at=NOW - 6))
    redis_client.sadd(INVOCATION_TASKS_KEY, "t")
    redis_client.zadd(invocation_window_key("t"), {"run-1": NOW - 10})
    redis_client.zadd(REDBEAT_PREFIX + ":schedule", {REDBEAT_PREFIX + "e": NOW + 60})
    body, _ = exposition(metrics_registry(redis_client, clock=lambda: NOW))
    return {sample.name for family in text_string_to_metric_families(body.decode()) for sample in family.samples}


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def rule_exprs() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def test_every_dashboard_query_and_alert_names_only_metrics_the_monitor_exports(redis_client):
    exported = exported_sample_names(redis_client)
    assert "beatkeeper_build_info" in exported and "beatkeeper_dead_letters" in exported
    assert not {name for name in exported if not name.startswith("beatkeeper_")}
    exprs = {f"panel: {e}": e for e in dashboard_exprs()} | {f"alert {a}": e for a, e in rule_exprs().items()}
    for where, expr in exprs.items():
        named = set(METRIC.findall(expr))
        assert named, f"{where} names no beatkeeper metric"
        assert named <= exported, f"{where}: {sorted(named - exported)} not exported"
    assert len(dashboard_exprs()) >= 10


def test_the_alerts_cover_heartbeat_missed_overlap_budget_lateness_and_dead_letters():
    assert set(rule_exprs()) >= {"BeatkeeperHeartbeatStale", "BeatkeeperMissedRuns", "BeatkeeperOverlap",
                                 "BeatkeeperBudgetExceeded", "BeatkeeperRunsLate", "BeatkeeperDeadLetters"}


def test_each_alert_has_a_unit_test_that_fires_it():
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == set(rule_exprs())


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        missing("promtool (Debian's 'prometheus' package: apt-get install prometheus)")
    return found


@pytest.mark.parametrize("args", [("check", "rules", RULES.name), ("test", "rules", RULES_TEST.name)],
                         ids=["check", "test"])
def test_promtool_accepts_the_rules_and_their_unit_tests_pass(args):
    result = subprocess.run([promtool(), *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_default_port_is_outside_the_exporters_range_and_not_celery_exporters():
    assert not 9100 <= DEFAULT_PORT <= 9999 and DEFAULT_PORT != 9808

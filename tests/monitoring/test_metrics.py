"""Metrics counted in Redis and exposed by the collector: exact values, through the text exposition
and through real HTTP."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.heartbeats import HeartbeatRun, record_heartbeat
from monitoring.metrics import (DURATION_BUCKETS_S, INVOCATION_TASKS_KEY, RunMetrics, exposition,
                                invocation_window_key, metrics_registry, metrics_wsgi_app)
from monitoring.server import serve_in_thread

NOW = 1_780_000_000.0


def samples(registry) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed back from the text exposition."""
    body, content_type = exposition(registry)
    assert content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


@pytest.fixture
def registry(redis_client):
    return metrics_registry(redis_client, clock=lambda: NOW)


def test_runs_are_counted_by_entry_task_and_status(redis_client, registry):
    metrics = RunMetrics(redis_client)
    for status in ("success", "success", "failure", "skipped_overlap"):
        metrics.record_run(entry="sync", task="jobs.sync", status=status, finished_at=NOW)
    metrics.record_run(entry="", task="jobs.sync", status="success", finished_at=NOW)
    got = samples(registry)
    runs = {labels: v for (name, labels), v in got.items() if name == "beatkeeper_schedule_runs_total"}
    assert runs == {
        (("entry", "sync"), ("name", "jobs.sync"), ("status", "success")): 2.0,
        (("entry", "sync"), ("name", "jobs.sync"), ("status", "failure")): 1.0,
        (("entry", "sync"), ("name", "jobs.sync"), ("status", "skipped_overlap")): 1.0,
        (("entry", ""), ("name", "jobs.sync"), ("status", "success")): 1.0,
    }
    assert got[("beatkeeper_task_overlap_detected_total", (("entry", "sync"), ("name", "jobs.sync")))] == 1.0


def test_durations_form_a_cumulative_histogram(redis_client, registry):
    metrics = RunMetrics(redis_client)
    for duration_s in (0.004, 0.3, 0.3, 7200.0):
        metrics.record_run(entry="e", task="t", status="success", finished_at=NOW, duration_s=duration_s)
    got = samples(registry)
    bucket = lambda le: got[("beatkeeper_task_duration_seconds_bucket", (("le", le), ("name", "t")))]  # noqa: E731
    assert [bucket("0.01"), bucket("0.25"), bucket("0.5"), bucket("3600.0"), bucket("+Inf")] == [1, 1, 3, 3, 4]
    assert got[("beatkeeper_task_duration_seconds_count", (("name", "t"),))] == 4
    assert got[("beatkeeper_task_duration_seconds_sum", (("name", "t"),))] == pytest.approx(7200.604)
    assert len([k for k in got if k[0] == "beatkeeper_task_duration_seconds_bucket"]) == len(DURATION_BUCKETS_S) + 1


def test_lateness_is_observed_per_entry_and_never_for_hand_runs(redis_client, registry):
    metrics = RunMetrics(redis_client)
    metrics.record_run(entry="e", task="t", status="success", finished_at=NOW, lateness_s=1.5)
    metrics.record_run(entry="", task="t", status="success", finished_at=NOW, lateness_s=9.0)
    got = samples(registry)
    assert got[("beatkeeper_schedule_lateness_seconds_count", (("entry", "e"),))] == 1
    assert got[("beatkeeper_schedule_lateness_seconds_bucket", (("entry", "e"), ("le", "1.0")))] == 0
    assert got[("beatkeeper_schedule_lateness_seconds_bucket", (("entry", "e"), ("le", "2.0")))] == 1
    assert not any(k[1] == (("entry", ""),) for k in got if k[0].startswith("beatkeeper_schedule_lateness"))


def test_last_success_keeps_the_latest_instant_of_a_success(redis_client, registry):
    metrics = RunMetrics(redis_client)
    metrics.record_run(entry="e", task="t", status="success", finished_at=NOW - 10)
    metrics.record_run(entry="e", task="t", status="success", finished_at=NOW - 60)  # a slow run finishing late
    metrics.record_run(entry="e", task="t", status="failure", finished_at=NOW)
    assert samples(registry)[("beatkeeper_schedule_last_success_timestamp", (("entry", "e"),))] == NOW - 10


def test_state_gauges_come_from_redbeat_heartbeats_and_budget_windows(redis_client, registry):
    redis_client.zadd("redbeat::schedule", {"redbeat:sync": NOW + 30, "redbeat:report": NOW + 3600})
    record_heartbeat(redis_client, HeartbeatRun(executed_at=NOW - 42, worker="w1", task_id="x", scheduled_at=NOW - 45))
    redis_client.zadd(invocation_window_key("t"), {"a": NOW - 4000, "b": NOW - 3599, "c": NOW - 1})
    redis_client.sadd(INVOCATION_TASKS_KEY, "t")
    RunMetrics(redis_client).record_miss(entry="sync", count=3)
    got = samples(registry)
    assert got[("beatkeeper_schedule_next_fire_timestamp", (("entry", "sync"),))] == NOW + 30
    assert got[("beatkeeper_schedule_next_fire_timestamp", (("entry", "report"),))] == NOW + 3600
    assert got[("beatkeeper_heartbeat_age_seconds", (("component", "worker:w1"),))] == 42
    assert got[("beatkeeper_heartbeat_age_seconds", (("component", "beat"),))] == 45
    assert got[("beatkeeper_task_invocations_per_hour", (("name", "t"),))] == 2  # "a" is older than an hour
    assert got[("beatkeeper_schedule_miss_total", (("entry", "sync"),))] == 3


def test_metrics_are_served_over_http_and_other_paths_are_404(redis_client, registry):
    RunMetrics(redis_client).record_run(entry="e", task="t", status="success", finished_at=NOW)
    server = serve_in_thread(metrics_wsgi_app(registry))
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert 'beatkeeper_schedule_runs_total{entry="e",name="t",status="success"} 1.0' in body
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nope", timeout=5)
        assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_openmetrics_is_served_when_asked_for(redis_client, registry):
    RunMetrics(redis_client).record_run(entry="e", task="t", status="success", finished_at=NOW)
    body, content_type = exposition(registry, accept="application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")

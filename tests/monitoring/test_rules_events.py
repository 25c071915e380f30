"""Platform events become alerts: one incident per kind and subject, resolved after a quiet period,
read from a cursor so a restart repeats nothing and a fresh monitor ignores the past."""
from __future__ import annotations

import pytest

from monitoring.alerts import NotificationKind, Severity
from monitoring.events import record_event
from monitoring.rules.events import EventsRule
from tests.monitoring.monitor_fixtures import RecordingSink, evaluate, make_monitor, ts

FIRING, REMINDER, RESOLVED = NotificationKind.FIRING, NotificationKind.REMINDER, NotificationKind.RESOLVED
QUIET_S = 900


def events_monitor(client, sink):
    return make_monitor(client, {}, sinks=[sink], rules=[EventsRule()], event_quiet_s=QUIET_S)


@pytest.mark.parametrize("kind, subject, data, severity, phrase", [
    ("overlap_detected", "sync", {"action": "skipped", "reason": "the previous run still holds the lock"},
     Severity.WARNING, "sync: 1 overlapping run(s) detected (latest: skipped: the previous run still holds the lock)"),
    ("budget_exceeded", "jobs.poll", {"budget": 1000, "runs": 1000}, Severity.CRITICAL,
     "task jobs.poll hit its budget of 1000 runs per hour"),
    ("run_lost", "sync", {"task_id": "abc", "hostname": "w1"}, Severity.CRITICAL, "run(s) lost (latest abc on w1"),
    ("schedule_changed", "schedule", {"previous": "a" * 64, "current": "b" * 64}, Severity.WARNING,
     "the registered schedule changed (fingerprint aaaaaaaaaaaa -> bbbbbbbbbbbb)"),
    ("missed_runs", "nightly", {"count": 2, "first": "2026-06-01T03:00:00+00:00", "last": "2026-06-02T03:00:00+00:00"},
     Severity.WARNING, "entry nightly: beat found 2 instant(s) missed while it was down"),
    ("schedule_entry_restored", "sync", {}, Severity.WARNING, "entry sync vanished from redbeat's schedule"),
    ("pipeline_failed", "gtfs-static", {"run_id": "r1", "step": "export", "attempts": 4, "error": "OSError: disk"},
     Severity.CRITICAL, "pipeline gtfs-static: run r1 failed at step export after 4 attempt(s): OSError: disk; "
                        "`beatkeeper pipeline resume r1`"),
    ("pipeline_stalled", "gtfs-static", {"run_id": "r1", "step": "refresh", "since": "2026-06-01T03:10:00+00:00",
                                         "action": "resumed"}, Severity.WARNING,
     "pipeline gtfs-static: run r1 stalled at step refresh since 2026-06-01T03:10:00+00:00 (resumed)"),
    ("run_dead_lettered", "killer", {"run_id": "killer@x", "deaths": 4, "max_redeliveries": 3}, Severity.CRITICAL,
     "killer: run killer@x dead-lettered after its worker died 4 time(s) (cap 3)"),
], ids=["overlap_alerts_per_entry", "budget_alerts_per_task", "lost_run_alerts", "schedule_change_alerts",
        "beats_catchup_misses_alert", "restored_entry_alerts", "failed_pipeline_alerts", "stalled_pipeline_alerts",
        "dead_lettered_run_alerts"])
def test_each_event_kind_alerts_under_its_own_rule(redis_client, kind, subject, data, severity, phrase):
    sink = RecordingSink()
    monitor = events_monitor(redis_client, sink)
    evaluate(monitor, 0)
    record_event(redis_client, kind, subject, at=ts(10), **data)
    evaluate(monitor, 15)
    [note] = sink.sent
    assert (note.kind, note.alert.rule, note.alert.subject, note.alert.severity) == (FIRING, kind, subject, severity)
    assert phrase in note.alert.summary


def test_repeated_events_are_one_incident_resolved_after_a_quiet_period(redis_client):
    sink = RecordingSink()
    monitor = events_monitor(redis_client, sink)
    evaluate(monitor, 0)
    for second in range(10, 600, 60):  # an overlap every minute for ten minutes
        record_event(redis_client, "overlap_detected", "sync", at=ts(second), action="skipped")
        evaluate(monitor, second + 1)
    last_seen = 551
    for second in range(600, last_seen + QUIET_S + 30, 10):
        evaluate(monitor, second)
    # quiet from 1451: the first evaluation then is at 1460
    assert [(n.kind, n.at) for n in sink.sent] == [(FIRING, ts(11)), (RESOLVED, ts(1460))]
    assert "10 overlapping run(s)" in sink.sent[1].alert.summary


def test_a_budget_alert_stays_through_the_budgets_hourly_reports(redis_client):
    sink = RecordingSink()
    monitor = events_monitor(redis_client, sink)
    evaluate(monitor, 0)
    for hour in range(3):
        record_event(redis_client, "budget_exceeded", "jobs.poll", at=ts(hour * 3600 + 5), budget=10, runs=10)
        for second in range(hour * 3600 + 10, (hour + 1) * 3600, 300):
            evaluate(monitor, second)
    assert [n.kind for n in sink.sent] == [FIRING, REMINDER, REMINDER]  # never resolved in between


def test_events_before_the_first_start_are_ignored_and_a_restart_repeats_none(redis_client):
    record_event(redis_client, "overlap_detected", "old", at=ts(-3600), action="skipped")
    first_sink, second_sink = RecordingSink(), RecordingSink()
    first = events_monitor(redis_client, first_sink)
    evaluate(first, 0)
    record_event(redis_client, "run_lost", "sync", at=ts(5), task_id="x")
    evaluate(first, 10)
    second = events_monitor(redis_client, second_sink)  # restarted
    for second_s in range(15, 100, 5):
        evaluate(second, second_s)
    assert [(n.kind, n.alert.subject) for n in first_sink.sent] == [(FIRING, "sync")]
    assert second_sink.sent == []


def test_unknown_event_kinds_and_long_runs_are_left_to_others(redis_client):
    sink = RecordingSink()
    monitor = events_monitor(redis_client, sink)
    evaluate(monitor, 0)
    record_event(redis_client, "something_new", "x", at=ts(1))
    record_event(redis_client, "long_run", "sync", at=ts(2), task_id="t", still_running=True)
    evaluate(monitor, 5)
    assert sink.sent == []

"""How runs end: failed after the last retry, failing in a row, past max_runtime, too many per hour."""
from __future__ import annotations

import pytest

from monitoring.alerts import NotificationKind
from monitoring.events import record_event
from monitoring.metrics import INVOCATION_TASKS_KEY, invocation_window_key
from monitoring.rules.infrastructure import HistoryRule
from monitoring.rules.runs import ConsecutiveFailuresRule, FailedRunRule, InvocationRateRule, LongRunRule
from tests.monitoring.monitor_fixtures import (RecordingSink, a_run, evaluate, history, make_monitor,  # noqa: F401
                                               specs_of, ts)

FIRING, RESOLVED = NotificationKind.FIRING, NotificationKind.RESOLVED
SPECS = specs_of({"sync": {"task": "jobs.sync", "every": 60}, "report": {"task": "jobs.report", "every": 60}})


def monitor_with(client, history, rule, sink, **settings):
    return make_monitor(client, SPECS, sinks=[sink], history=history, rules=[HistoryRule(), rule], **settings)


def test_a_run_failed_after_its_last_retry_alerts_once_and_a_later_success_resolves_it(redis_client, history):
    sink = RecordingSink()
    monitor = monitor_with(redis_client, history, FailedRunRule(), sink)
    evaluate(monitor, 0)
    history.write([a_run("sync", 60, status="retry", task="jobs.sync", task_id="r1", error_type="Timeout"),
                   a_run("sync", 60, status="failure", task="jobs.sync", task_id="r1", attempt=2,
                         error_type="TimeoutError", error_message="feed took too long")])
    for second in range(5, 100, 5):
        evaluate(monitor, second)
    history.write([a_run("sync", 120, task="jobs.sync")])
    for second in range(125, 200, 5):
        evaluate(monitor, second)
    assert [(n.kind, n.alert.subject) for n in sink.sent] == [(FIRING, "sync"), (RESOLVED, "sync")]
    assert sink.sent[0].alert.summary == "sync (jobs.sync) failed after 2 retries: TimeoutError: feed took too long"


def test_retries_alone_are_not_failures(redis_client, history):
    sink = RecordingSink()
    monitor = monitor_with(redis_client, history, FailedRunRule(), sink)
    evaluate(monitor, 0)
    history.write([a_run("sync", 60, status="retry", task_id=f"r{i}", attempt=i) for i in range(3)])
    evaluate(monitor, 65)
    assert sink.sent == []


def test_failures_before_the_monitor_first_started_are_not_news(redis_client, history):
    history.write([a_run("sync", -600, status="failure", error_type="OldError")])
    sink = RecordingSink()
    monitor = monitor_with(redis_client, history, FailedRunRule(), sink)
    for second in range(0, 60, 5):
        evaluate(monitor, second)
    assert sink.sent == []


def test_a_hand_triggered_failure_is_reported_under_its_task(redis_client, history):
    sink = RecordingSink()
    monitor = monitor_with(redis_client, history, FailedRunRule(), sink)
    evaluate(monitor, 0)
    history.write([a_run("", 30, status="failure", task="jobs.adhoc", fire_at=None)])
    evaluate(monitor, 35)
    assert [n.alert.subject for n in sink.sent] == ["jobs.adhoc"]


@pytest.mark.parametrize("statuses, fires", [
    (["failure", "failure", "failure"], True),
    (["failure", "lost", "failure"], True),
    (["failure", "failure"], False),
    (["failure", "failure", "failure", "success"], False),
    (["failure", "failure", "skipped_overlap", "failure"], True),
], ids=["three_failures_in_a_row_fire", "a_lost_run_counts_as_failed", "two_failures_are_not_enough",
        "a_success_breaks_the_row", "skips_do_not_break_the_row"])
def test_consecutive_failures_of_an_entry(redis_client, history, statuses, fires):
    history.write([a_run("sync", 60 * i, status=s) for i, s in enumerate(statuses)])
    sink = RecordingSink()
    evaluate(monitor_with(redis_client, history, ConsecutiveFailuresRule(), sink), 600)
    assert [(n.kind, n.alert.subject) for n in sink.sent] == ([(FIRING, "sync")] if fires else [])


def test_a_long_run_fires_while_it_runs_and_resolves_when_it_ends(redis_client, history):
    sink = RecordingSink()
    monitor = monitor_with(redis_client, history, LongRunRule(), sink)
    evaluate(monitor, 0)
    record_event(redis_client, "long_run", "sync", at=ts(660), task_id="slow-1", task="jobs.sync",
                 max_runtime_s=600, started_at=ts(60), elapsed_s=600.0, still_running=True)
    for second in range(665, 900, 5):
        evaluate(monitor, second)
    assert [n.kind for n in sink.sent] == [FIRING]
    assert sink.sent[0].alert.summary == "sync: run slow-1 still running after 605 s (max_runtime 600 s)"
    history.write([a_run("sync", 60, task="jobs.sync", task_id="slow-1", took_s=850)])
    evaluate(monitor, 905)
    assert [n.kind for n in sink.sent] == [FIRING, RESOLVED]


def test_a_run_that_ended_past_its_bound_is_still_reported_once(redis_client, history):
    sink = RecordingSink()
    monitor = monitor_with(redis_client, history, LongRunRule(), sink)
    evaluate(monitor, 0)
    record_event(redis_client, "long_run", "sync", at=ts(700), task_id="slow-2", max_runtime_s=600,
                 started_at=ts(60), elapsed_s=640.0, still_running=False)
    history.write([a_run("sync", 60, task_id="slow-2", took_s=640)])
    for second in range(705, 800, 5):
        evaluate(monitor, second)
    assert [n.kind for n in sink.sent] == [FIRING, RESOLVED]
    assert "ran 640.0 s (max_runtime 600 s)" in sink.sent[0].alert.summary


@pytest.mark.parametrize("runs, fires", [(1000, False), (1001, True)],
                         ids=["exactly_the_limit_is_quiet", "one_more_than_the_limit_fires"])
def test_invocations_per_hour_above_the_limit_alert(redis_client, runs, fires):
    now = ts(3600)
    redis_client.zadd(invocation_window_key("jobs.poll"), {f"run-{i}": now - i for i in range(runs)})
    redis_client.zadd(invocation_window_key("jobs.poll"), {f"old-{i}": now - 4000 - i for i in range(50)})
    redis_client.sadd(INVOCATION_TASKS_KEY, "jobs.poll")
    sink = RecordingSink()
    evaluate(make_monitor(redis_client, SPECS, sinks=[sink], rules=[InvocationRateRule()]), 3600)
    assert [n.alert.subject for n in sink.sent] == (["jobs.poll"] if fires else [])

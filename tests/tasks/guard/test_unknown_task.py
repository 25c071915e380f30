"""``celery -A tasks call no.such.task``: a message for a task no worker knows is not silently
dropped; it is recorded in the history and raises a ``task_unknown`` alert."""
from __future__ import annotations

import subprocess
import sys

from monitoring.alerts import NotificationKind
from monitoring.events import record_event
from monitoring.rules.events import EventsRule
from monitoring.rules.infrastructure import HistoryRule
from monitoring.rules.runs import FailedRunRule
from tests.conftest import ROOT
from tests.monitoring.databases import app_history, drained_records, sqlite_url  # noqa: F401
from tests.monitoring.monitor_fixtures import RecordingSink, evaluate, make_monitor


def test_celery_call_of_an_unknown_task_is_recorded_with_an_alert(app_history, worker, redis_client):
    sink = RecordingSink()
    monitor = make_monitor(redis_client, {}, sinks=[sink], history=app_history,
                           rules=[HistoryRule(), EventsRule(), FailedRunRule()])
    evaluate(monitor, 0)  # the monitor reads what happens from here on
    sent = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", "call", "no.such.task"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    task_id = sent.stdout.strip()
    [record] = drained_records(app_history, expected=1, timeout_s=30, task="no.such.task")
    assert (record.task_id, record.status, record.error_type) == (task_id, "failure", "NotRegistered")
    assert "not executed" in record.error_message and record.started_at is None
    evaluate(monitor, 5)
    assert "FailedRunRule" not in evaluate(monitor, 10).skipped  # the history was read: no run_failed either
    [alert] = [n.alert for n in sink.sent if n.kind is NotificationKind.FIRING]  # one alert, not one per rule
    assert (alert.rule, alert.subject) == ("task_unknown", "no.such.task")
    assert "BEATKEEPER_TASK_MODULES" in alert.summary


def test_the_unknown_task_alert_resolves_once_such_messages_stop(redis_client):
    sink = RecordingSink()
    monitor = make_monitor(redis_client, {}, sinks=[sink], rules=[EventsRule()], event_quiet_s=900.0)
    evaluate(monitor, 0)
    record_event(redis_client, "task_unknown", "no.such.task", task_id="t1", hostname="w1")
    evaluate(monitor, 5)
    evaluate(monitor, 5 + 901)
    assert sink.kinds("task_unknown") == [NotificationKind.FIRING, NotificationKind.RESOLVED]

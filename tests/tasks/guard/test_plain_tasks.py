"""Plain tasks stay plain: a task with no schedule entry and no declared policy runs as a plain
Celery task would (no overlap skip, no budget skip), its runs still recorded in the history and
metrics, and going over the budget raises one event and one alert instead of skipping runs."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from monitoring.alerts import NotificationKind
from monitoring.events import read_events
from monitoring.metrics import metrics_registry
from monitoring.rules.events import EventsRule
from monitoring.rules.runs import InvocationRateRule
from tasks.guard import standard_middlewares
from tasks.guard.scope import ScheduledTasks, publish_scheduled_tasks
from tests.app_wiring import set_scheduled_tasks
from tests.app_wiring import set_middlewares
from tests.monitoring.databases import app_history, drained_records, sqlite_url  # noqa: F401
from tests.monitoring.monitor_fixtures import RecordingSink, evaluate, make_monitor
from tests.run_states import run_state
from tests.servers import wait_until
from tests.tasks import plain_tasks as pt

TASK = "tests.plain.send_email"


@pytest.fixture
def fresh_scope(app, redis_client):
    """Each test starts with nothing scheduled, read afresh on every run."""
    set_scheduled_tasks(app, ScheduledTasks(redis_client, refresh_s=0))
    yield
    set_scheduled_tasks(app, ScheduledTasks(redis_client))


def ran(redis_client, key: str) -> int:
    return int(redis_client.get(pt.keys(key)["ran"]) or 0)


def test_fifty_concurrent_calls_with_the_same_arguments_all_execute(app_history, fresh_scope, worker,
                                                                    redis_client):
    with ThreadPoolExecutor(10) as pool:  # fifty callers at once, as a web app's requests would
        results = list(pool.map(lambda _: pt.send_email.delay("ann@example.com", hold_s=0.2), range(50)))
    wait_until(lambda: all(r.ready() for r in results), timeout_s=60, what="fifty calls to end")
    assert [run_state(r) for r in results] == ["SUCCESS"] * 50
    assert ran(redis_client, "ann@example.com") == 50
    assert int(redis_client.get(pt.keys("ann@example.com")["most_at_once"])) > 1  # they did meet
    assert read_events(redis_client, kind="overlap_detected") == []
    records = drained_records(app_history, expected=50, task=TASK)
    assert [r.status for r in records] == ["success"] * 50  # still on record


def test_fifteen_hundred_calls_past_the_budget_all_execute_with_one_budget_alert(app, app_history, fresh_scope,
                                                                                 worker, redis_client, monkeypatch):
    monkeypatch.setenv("BEATKEEPER_MAX_RUNS_PER_HOUR", "100")
    set_middlewares(app, standard_middlewares(app))  # budgets are read from the settings on first use
    sink = RecordingSink()
    monitor = make_monitor(redis_client, {}, sinks=[sink], rules=[EventsRule(), InvocationRateRule()],
                           invocations_per_hour=1000)
    evaluate(monitor, 0)  # the monitor starts reading events from here
    results = [pt.send_email.delay(f"user{n % 7}@example.com") for n in range(1500)]
    records = drained_records(app_history, expected=1500, timeout_s=120, task=TASK)
    assert [r.status for r in records].count("success") == 1500
    assert sum(ran(redis_client, f"user{n}@example.com") for n in range(7)) == 1500
    assert {run_state(r) for r in results[-20:]} == {"SUCCESS"}
    [event] = read_events(redis_client, kind="budget_exceeded")
    assert (event.subject, event.data["budget"], event.data["enforced"]) == (TASK, 100, False)
    gauge = metrics_registry(redis_client).get_sample_value("beatkeeper_task_invocations_per_hour", {"name": TASK})
    assert gauge == 1500  # every run counted, none refused
    evaluate(monitor, 5)
    firing = [n for n in sink.sent if n.kind is NotificationKind.FIRING]
    assert [(n.alert.rule, n.alert.subject) for n in firing] == [("budget_exceeded", TASK)]  # one, not one per rule
    assert "its runs still execute" in firing[0].alert.summary


def test_a_scheduled_tasks_hand_run_keeps_the_guard(app_history, fresh_scope, worker, redis_client):
    publish_scheduled_tasks(redis_client, [TASK])  # what beat publishes at start
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: pt.send_email.delay("bob@example.com", hold_s=0.5), range(4)))
    wait_until(lambda: all(r.ready() for r in results), timeout_s=30, what="four calls to end")
    states = sorted(run_state(r) for r in results)
    assert "SKIPPED_OVERLAP" in states and "SUCCESS" in states
    assert int(redis_client.get(pt.keys("bob@example.com")["most_at_once"])) == 1


def test_beat_publishes_the_tasks_its_entries_run(app, redis_client, monkeypatch, tmp_path):
    from datetime import datetime, timezone

    from tasks.guard.scope import SCHEDULED_TASKS_KEY
    from tests.tasks.beat.harness import BeatDriver

    schedule = {"digest": {"task": TASK, "every": 3600, "kwargs": {"to": "team@example.com"}}}
    BeatDriver(app, monkeypatch, tmp_path, schedule, start=datetime(2026, 11, 2, tzinfo=timezone.utc))
    assert TASK in redis_client.smembers(SCHEDULED_TASKS_KEY)  # so its hand runs keep the guard

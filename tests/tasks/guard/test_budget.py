"""The runtime budget: a rolling hour per task in Redis, refusal as skipped_budget, one alert
per hour per task, and where each task's budget comes from."""
from __future__ import annotations

import json
import logging
import time

import pytest

from monitoring.events import read_events
from monitoring.metrics import metrics_registry
from tasks.guard.budget import BudgetLimits, BudgetMiddleware, runs_in_last_hour
from tasks.policy import RunPolicy
from tasks.guard.run import Run, RunStatus
from tests.monitoring.databases import app_history, drained_records, sqlite_url  # noqa: F401
from tests.servers import wait_until
from tests.tasks import history_tasks as ht
from tests.run_states import run_state

T0 = 1_780_000_000.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def a_run(task: str = "jobs.sync", n: int = 0, entry: str = "") -> Run:
    return Run(task_name=task, task_id=f"id-{n}", args=(), kwargs={}, policy=RunPolicy(), lock_key=None,
               received_at=T0, entry=entry)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def budget(redis_client, clock):
    return BudgetMiddleware(redis_client, limits=BudgetLimits(default=3), clock=clock)


def admitted(budget, runs) -> list[bool]:
    return [budget.before_run(run) is None for run in runs]


def test_runs_beyond_the_budget_are_skipped_with_a_reason(budget):
    results = [budget.before_run(a_run(n=n)) for n in range(5)]
    assert results[:3] == [None, None, None]
    assert [r.status for r in results[3:]] == [RunStatus.SKIPPED_BUDGET] * 2
    assert results[3].reason == "jobs.sync already ran 3 times in the last hour (budget 3/h)"


def test_the_window_is_a_rolling_hour_not_a_clock_hour(budget, clock, redis_client):
    clock.now = T0
    assert admitted(budget, [a_run(n=0)]) == [True]
    clock.now = T0 + 1800
    assert admitted(budget, [a_run(n=1), a_run(n=2), a_run(n=3)]) == [True, True, False]
    clock.now = T0 + 3600  # the first run is exactly an hour old: out of the window
    assert admitted(budget, [a_run(n=4), a_run(n=5)]) == [True, False]
    clock.now = T0 + 1800 + 3600
    assert admitted(budget, [a_run(n=6), a_run(n=7), a_run(n=8)]) == [True, True, False]
    assert runs_in_last_hour(redis_client, "jobs.sync", now=clock.now) == 3


def test_each_task_has_its_own_budget(budget):
    assert admitted(budget, [a_run("a", n) for n in range(4)]) == [True, True, True, False]
    assert admitted(budget, [a_run("b", n) for n in range(3)]) == [True, True, True]


def test_refusals_alert_once_per_hour_per_task(budget, clock, redis_client):
    for n in range(6):
        budget.before_run(a_run("a", n))
    for n in range(5):
        budget.before_run(a_run("b", n))
    clock.now = T0 + 3599  # within the hour of a's alert: refused again, no second alert
    assert budget.before_run(a_run("a", 99)).status is RunStatus.SKIPPED_BUDGET
    assert [(e.subject, e.data["budget"], e.data["runs"]) for e in read_events(redis_client, kind="budget_exceeded")] \
        == [("a", 3, 3), ("b", 3, 3)]
    clock.now = T0 + 3601  # the next hour: three runs fit again, the fourth alerts again
    assert admitted(budget, [a_run("a", n) for n in range(100, 105)]) == [True, True, True, False, False]
    assert [e.subject for e in read_events(redis_client, kind="budget_exceeded")] == ["a", "b", "a"]


@pytest.mark.parametrize("per_entry_task, declared, expected", [
    pytest.param({"t": 50}, 7, 50, id="entry_budget_beats_declaration"),
    pytest.param({}, 7, 7, id="declaration_beats_default"),
    pytest.param({}, None, 1000, id="default_is_1000"),
])
def test_budget_resolution_order(per_entry_task, declared, expected):
    class Declared:
        max_runs_per_hour = declared

    limits = BudgetLimits(default=1000, per_entry_task=per_entry_task, tasks={"t": Declared})
    assert limits.for_task("t") == expected


def test_limits_come_from_what_beat_published_never_from_the_schedule_file(app, redis_client, tmp_path):
    from tasks.beat import policy_publisher
    from tests.app_wiring import set_published_policies
    from tasks.policy import PublishedPolicies
    from tasks.beat.schedule_source import load_validated_schedule

    schedule = {"sync": {"task": "tests.history.ok", "every": 60, "max_runs_per_hour": 90, "args": ["k"]}}
    set_published_policies(app, PublishedPolicies(redis_client, refresh_s=0))
    file = tmp_path / "schedule.json"
    file.write_text(json.dumps({"sync": {**schedule["sync"], "max_runs_per_hour": 5000}}))
    env = {"BEATKEEPER_MAX_RUNS_PER_HOUR": "250", "BEATKEEPER_SCHEDULE": str(file)}
    limits = BudgetLimits.from_app(app, environ=env)
    # Nothing published yet: the declaration, then the worker's own setting; the file is not read.
    assert (limits.for_task("tests.history.ok"), limits.for_task("tests.history.small_budget")) == (250, 2)
    kept = load_validated_schedule(app, environ={}, raw=schedule).entries
    policy_publisher.publish(redis_client, kept, default_budget=300, tasks=app.tasks)
    assert (limits.for_task("tests.history.ok"), limits.for_task("tests.history.small_budget"),
            limits.for_task("tests.history.counted")) == (90, 2, 300)


def test_30_messages_sharing_one_task_id_are_30_deliveries(app_history, worker, redis_client):
    """Issue 13: deliveries sharing one task id were one member of the budget's window. Run
    identity lets a failed id run again, so a failing loop reusing its id escaped the budget."""
    from monitoring.metrics import invocation_window_key

    for _ in range(30):
        ht.fail.apply_async(("same-id",), task_id="one-id-for-all")
    records = drained_records(app_history, expected=30, timeout_s=40, task="tests.history.fail")
    executed = int(redis_client.get(ht.ran_key("same-id")) or 0)
    assert executed >= 2 and [r.status for r in records].count("failure") == executed
    assert redis_client.zcard(invocation_window_key("tests.history.fail")) == executed
    assert runs_in_last_hour(redis_client, "tests.history.fail", now=time.time()) == executed


def test_a_bad_budget_setting_falls_back_to_the_default_and_says_so(app, caplog):
    with caplog.at_level(logging.WARNING, logger="tasks.guard.budget"):
        limits = BudgetLimits.from_app(app, environ={"BEATKEEPER_MAX_RUNS_PER_HOUR": "many"})
    assert limits.default == 1000 and "BEATKEEPER_MAX_RUNS_PER_HOUR" in caplog.text


def test_a_loop_of_1500_runs_in_a_minute_executes_1000_and_records_500_skipped(app_history, worker, redis_client):
    started = time.monotonic()
    for n in range(1500):
        ht.counted.delay(f"loop-{n // 1000}")  # two keys: the budget is per task, not per argument
    records = drained_records(app_history, expected=1500, timeout_s=50, task="tests.history.counted")
    assert time.monotonic() - started < 60
    statuses = [r.status for r in records]
    assert (statuses.count("success"), statuses.count("skipped_budget"), len(records)) == (1000, 500, 1500)
    assert int(redis_client.get(ht.ran_key("loop-0")) or 0) + int(redis_client.get(ht.ran_key("loop-1")) or 0) == 1000
    events = read_events(redis_client, kind="budget_exceeded")
    assert [(e.subject, e.data["budget"]) for e in events] == [("tests.history.counted", 1000)]
    gauge = metrics_registry(redis_client).get_sample_value("beatkeeper_task_invocations_per_hour",
                                                            {"name": "tests.history.counted"})
    assert gauge == 1000


def test_a_task_declared_budget_applies_on_a_real_worker(app_history, worker, redis_client):
    results = [ht.small_budget.delay("small") for _ in range(3)]
    wait_until(lambda: all(r.ready() for r in results), timeout_s=20, what="three runs finished")
    assert sorted(run_state(r) for r in results) == ["SKIPPED_BUDGET", "SUCCESS", "SUCCESS"]
    assert int(redis_client.get(ht.ran_key("small"))) == 2

"""Long-run detection, against real Redis: the bound crossed while the run still runs is recorded
once (on a manual timer), and a real worker's slow run is reported, not killed."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from monitoring.events import read_events
from tasks import headers
from tasks.guard.longrun import LongRunMiddleware
from tasks.policy import RunPolicy
from tasks.guard.run import Outcome, Run, RunStatus
from tests.servers import wait_until
from tests.tasks import guarded_tasks as gt
from tests.tasks.conftest import publish_entry

pytestmark = pytest.mark.usefixtures("guard_only")

FIRE_AT = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def scheduled(entry: str, task, **policy) -> dict:
    """Headers of a scheduled dispatch of ``task`` whose entry sets ``policy`` (published, as beat does)."""
    publish_entry(entry, task, **policy)
    return headers.dispatch_headers(entry, FIRE_AT)


class ManualTimer:
    def __init__(self, interval_s, fn):
        self.interval_s, self.fn, self.started, self.cancelled = interval_s, fn, False, False

    def start(self):
        self.started = True

    def cancel(self):
        self.cancelled = True


def _long_run_fixture(redis_client, max_runtime_s=10.0):
    timers: list[ManualTimer] = []
    now = [1000.0]
    middleware = LongRunMiddleware(redis_client, clock=lambda: now[0],
                                   timer_factory=lambda s, fn: timers.append(ManualTimer(s, fn)) or timers[-1])
    run = Run(task_name="t", task_id="id-1", args=(), kwargs={}, entry="e",
              policy=RunPolicy(max_runtime_s=max_runtime_s), lock_key=None, received_at=1000.0, started_at=1000.0)
    return middleware, run, timers, now


@pytest.mark.parametrize("timer_fires, finished_after_s, expected", [
    pytest.param(True, 15.0, [True], id="crossing_the_bound_is_recorded_while_still_running_once"),
    pytest.param(False, 15.0, [False], id="a_late_timer_is_made_up_for_at_the_end"),
    pytest.param(False, 5.0, [], id="a_run_within_its_bound_records_nothing"),
])
def test_long_run_detection(redis_client, timer_fires, finished_after_s, expected):
    middleware, run, timers, now = _long_run_fixture(redis_client)
    middleware.before_run(run)
    assert timers[0].interval_s == 10.0 and timers[0].started
    if timer_fires:
        now[0] = 1010.0
        timers[0].fn()
    now[0] = 1000.0 + finished_after_s
    middleware.after_run(run, Outcome(status=RunStatus.SUCCESS, finished_at=now[0]))
    assert timers[0].cancelled
    events = read_events(redis_client, kind="long_run")
    assert [e.data["still_running"] for e in events] == expected
    assert all(e.subject == "e" and e.data["max_runtime_s"] == 10.0 for e in events)


def test_a_long_run_is_reported_while_it_runs_and_not_killed(worker, redis_client, probe_for):
    probe = probe_for("slow")
    probe.block()
    result = gt.probe.apply_async(("slow",), headers=scheduled("slow-entry", gt.probe, max_runtime_s=0.2))
    [event] = wait_until(lambda: read_events(redis_client, kind="long_run"), timeout_s=10, what="long_run event")
    assert event.subject == "slow-entry" and event.data["still_running"] and event.data["task_id"] == result.id
    assert not result.ready()
    probe.unblock()
    assert result.get(timeout=10) and result.state == "SUCCESS"

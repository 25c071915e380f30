"""An idempotent task may run its body again only for the *same message* after a success (its worker
died before the ack); a second dispatch of a run that already succeeded is a duplicate: its body
does not run again and the success stays the run's result (tasks/guard/identity.py).

Both dispatches are beat's own (the real scheduler's publish, with the entry stored and its policy
published as beat does), received by a real in-process worker on the app's standard chain."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tasks.application import app as celery_app
from tasks.beat.scheduler import BeatkeeperScheduler
from tasks.guard import standard_middlewares
from tests.app_wiring import installed_middlewares, set_middlewares
from tasks.infra.redis_client import app_redis
from tests.run_states import run_state
from tests.tasks.beat.harness import BeatDriver, RecordingScheduler
from tests.servers import wait_until

ENTRY = "idempotent-sync"
BODY_RUNS_KEY = "test:idempotent:body_runs"


@celery_app.task(name="tests.identity.idempotent_sync", bind=True, idempotent=True, overlap="allow",
                 lock_ttl_s=5.0)
def idempotent_sync(self) -> str:
    """Counts each execution of its body; returns what a real idempotent body would store."""
    app_redis(celery_app).incr(BODY_RUNS_KEY)
    return "synced"


class SendingScheduler(RecordingScheduler):
    """The real scheduler, really sending: records what it sends and keeps each entry to send again."""

    def __init__(self, *args, **kwargs):
        self.entries = {}
        self.dispatches = []
        super().__init__(*args, **kwargs)

    def _publish(self, entry, fire_at, producer, **kwargs):
        self.sent.append((entry.name, fire_at))
        self.entries[entry.name] = entry
        dispatch = BeatkeeperScheduler._publish(self, entry, fire_at, producer, **kwargs)
        self.dispatches.append(dispatch)
        return dispatch


class SendingDriver(BeatDriver):
    def start(self) -> SendingScheduler:
        return SendingScheduler(app=self.app, sent=self.sent, max_interval=self.max_interval_s,
                                lock_timeout=5 * self.max_interval_s, lazy=False)


@pytest.fixture
def standard_chain(app):
    previous = installed_middlewares(app)
    set_middlewares(app, standard_middlewares(app))
    yield
    if previous is None:
        set_middlewares(app, None)
    else:
        set_middlewares(app, previous)


def test_a_second_dispatch_after_success_does_not_run_the_idempotent_body_again(
        app, worker, redis_client, standard_chain, monkeypatch, tmp_path):
    this_minute = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    driver = SendingDriver(app, monkeypatch, tmp_path, {ENTRY: {"task": idempotent_sync.name, "every": 60}},
                           start=this_minute - timedelta(seconds=59), max_interval_s=5)
    driver.run_until(this_minute + timedelta(seconds=1))
    assert driver.sent == [(ENTRY, this_minute)]
    [first] = driver.scheduler.dispatches
    assert first is not None, "beat did not send the entry as a guarded task"
    first_result = app.AsyncResult(first.task_id)
    assert first_result.get(timeout=30) == "synced"

    again = BeatkeeperScheduler._publish(driver.scheduler, driver.scheduler.entries[ENTRY], this_minute, None)
    assert again.task_id != first.task_id  # another message for the same run
    second = app.AsyncResult(again.task_id)
    wait_until(lambda: second.state not in ("PENDING", "RECEIVED", "STARTED"), timeout_s=30,
               what="the second dispatch to be handled")

    assert int(redis_client.get(BODY_RUNS_KEY)) == 1  # the body ran for the first dispatch only
    assert run_state(second) == "SKIPPED_DUPLICATE"
    assert "succeeded already" in str(second.result)
    assert (first_result.state, first_result.result) == ("SUCCESS", "synced")  # the run's stored result

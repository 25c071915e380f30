"""The app's side of the dashboard's actions (tasks/dashboard_actions.py) on a real worker:
run-now sends the entry's task with its arguments; a dead letter is sent again, by hand."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from monitoring.web.actions import ActionRefused
from tasks.dashboard_actions import dashboard_actions, run_entry_now
from tasks.identity import DEAD_LETTERS_KEY, DeadLetter
from tests.monitoring.monitor_fixtures import specs_of
from tests.servers import wait_until
from tests.web.dashboard_tasks import CALLS_KEY

SCHEDULE = {"nightly": {"task": "tests.dashboard.record", "every": 60, "args": ["nightly"], "kwargs": {"n": 3}}}


def test_run_now_sends_the_entry_with_its_arguments_to_a_worker(app, redis_client, worker):
    specs = specs_of(SCHEDULE)
    task_id = run_entry_now(app, specs["nightly"], who="ops")
    assert task_id
    wait_until(lambda: json.dumps(["nightly", 3]) in redis_client.lrange(CALLS_KEY, 0, -1), timeout_s=60,
               what="the run-now run")
    actions = dashboard_actions(app, redis_client, lambda: specs)
    with pytest.raises(ActionRefused, match="no registered entry 'nope'"):
        actions.run_now("nope", who="ops")


def test_a_dead_letter_is_sent_again_and_an_unknown_one_refused(app, redis_client, worker):
    letter = DeadLetter(run_id="run-1", task="tests.dashboard.record", task_id="t-1", entry="nightly", fire_at=None,
                        args=["again"], kwargs={"n": 5}, deaths=3, max_redeliveries=2, at=0.0, last_holder=None)
    redis_client.lpush(DEAD_LETTERS_KEY, json.dumps(asdict(letter)))
    actions = dashboard_actions(app, redis_client, lambda: {})
    assert "sent again as task" in actions.requeue_dead_letter("run-1", who="ops")
    wait_until(lambda: json.dumps(["again", 5]) in redis_client.lrange(CALLS_KEY, 0, -1), timeout_s=60,
               what="the requeued run")
    with pytest.raises(ActionRefused, match="no dead letter run-2"):
        actions.requeue_dead_letter("run-2", who="ops")
    with pytest.raises(ActionRefused):
        actions.resume_pipeline("no-such-run", who="ops")

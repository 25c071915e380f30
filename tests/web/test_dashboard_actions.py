"""The app's side of the dashboard's actions (tasks/actions/dashboard.py) on a real worker: run-now
is ``beatkeeper trigger``'s path (the entry beat published, its arguments, a manual run of it); a
dead letter is requeued as ``beatkeeper dead-letters --requeue`` does; refusals are one line."""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone

import pytest

from monitoring.events import read_events
from monitoring.web.actions import ActionRefused
from tasks.actions.dashboard import dashboard_actions
from tasks.guard.identity import DEAD_LETTERS_KEY, DeadLetter
from tasks.actions.trigger import TRIGGERED_EVENT
from tests.tasks.beat.harness import BeatDriver
from tests.servers import wait_until
from tests.web.dashboard_tasks import CALLS_KEY

SCHEDULE = {"nightly": {"task": "tests.dashboard.record", "cron": "0 3 1 1 *", "args": ["nightly"],
                        "kwargs": {"n": 3}}}


def test_run_now_is_the_trigger_path_with_the_entry_s_arguments(app, redis_client, worker, monkeypatch, tmp_path):
    BeatDriver(app, monkeypatch, tmp_path, SCHEDULE, start=datetime(2026, 11, 2, tzinfo=timezone.utc))
    monkeypatch.undo()  # what beat stored and published stays; the run happens in real time
    actions = dashboard_actions(app, redis_client)
    line = actions.run_now("nightly", who="ops")
    assert "sent now as task" in line
    wait_until(lambda: json.dumps(["nightly", 3]) in redis_client.lrange(CALLS_KEY, 0, -1), timeout_s=60,
               what="the run-now run")
    triggered = [e for e in read_events(redis_client) if e.kind == TRIGGERED_EVENT]
    assert [(e.subject, e.data.get("who")) for e in triggered] == [("nightly", "ops")]
    with pytest.raises(ActionRefused, match="'nope' is not scheduled"):
        actions.run_now("nope", who="ops")


def test_a_dead_letter_is_sent_again_and_an_unknown_one_refused(app, redis_client, worker):
    letter = DeadLetter(run_id="run-1", task="tests.dashboard.record", task_id="t-1", entry="nightly", fire_at=None,
                        args=["again"], kwargs={"n": 5}, deaths=3, max_redeliveries=2, at=0.0, last_holder=None)
    redis_client.lpush(DEAD_LETTERS_KEY, json.dumps(asdict(letter)))
    actions = dashboard_actions(app, redis_client)
    assert "sent again as task" in actions.requeue_dead_letter("run-1", who="ops")
    wait_until(lambda: json.dumps(["again", 5]) in redis_client.lrange(CALLS_KEY, 0, -1), timeout_s=60,
               what="the requeued run")
    assert redis_client.llen(DEAD_LETTERS_KEY) == 0  # it left the list
    with pytest.raises(ActionRefused, match="no dead letter 'run-2'"):
        actions.requeue_dead_letter("run-2", who="ops")
    with pytest.raises(ActionRefused):
        actions.resume_pipeline("no-such-run", who="ops")

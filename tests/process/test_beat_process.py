"""`celery -A tasks beat` (redbeat) as a real process against the session's Redis."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from monitoring.heartbeats import last_heartbeat
from tests.servers import wait_until

pytestmark = pytest.mark.process
START_TIMEOUT_S = 60


def _schedule_file(tmp_path, schedule: dict) -> str:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(schedule))
    return str(path)


def test_beat_dispatches_a_short_interval_entry_to_a_worker_and_holds_the_redbeat_lock(
        processes, redis_client, tmp_path):
    env = {"BEATKEEPER_SCHEDULE": _schedule_file(tmp_path, {
        "fast-heartbeat": {"task": "beatkeeper.heartbeat", "every": 1, "expires": 5,
                           "max_runs_per_hour": 4000}}),
        "BEATKEEPER_MIN_INTERVAL": "1", "BEATKEEPER_LOOP_INTERVAL": "1"}
    worker = processes.celery("worker", "--loglevel=INFO", "-Q", "default", "-c", "1", "-P", "solo",
                              name="worker", env=env)
    beat = processes.celery("beat", "--loglevel=INFO", name="beat", env=env)
    run = wait_until(lambda: (hb := last_heartbeat(redis_client)) and hb.entry == "fast-heartbeat" and hb,
                     timeout_s=START_TIMEOUT_S, what="a beat-dispatched heartbeat")
    assert run.scheduled_at is not None and run.scheduled_at == int(run.scheduled_at)  # on the 1 s grid
    assert run.executed_at >= run.scheduled_at
    assert redis_client.get("redbeat::lock")  # beat holds the lock
    assert redis_client.ttl("redbeat::lock") > 0
    assert beat.poll() is None and worker.poll() is None


def test_beat_refuses_an_invalid_schedule_with_the_same_messages_as_check(processes, redis_client, tmp_path):
    path = _schedule_file(tmp_path, {
        "typo": {"task": "beatkeeper.heartbeat", "every": 60, "expirse": 5},
        "runaway": {"task": "beatkeeper.heartbeat", "every": 0.1}})
    env = {"BEATKEEPER_SCHEDULE": path}
    beat = processes.celery("beat", "--loglevel=INFO", name="beat", env=env)
    assert beat.wait(timeout=START_TIMEOUT_S) != 0
    log = beat.log_path.read_text()
    assert "Traceback" not in log
    check = subprocess.run([sys.executable, "-m", "tasks.cli", "check", "--config", path],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1
    problems = [line for line in check.stderr.splitlines() if line.startswith("entry ")]
    assert len(problems) == 2
    for line in problems:
        assert line in log
    assert not redis_client.keys("redbeat:*typo*") and not redis_client.keys("redbeat:*runaway*")


def test_a_disabled_entry_gets_no_redbeat_key_and_a_removed_one_is_deleted(processes, redis_client, tmp_path):
    schedule = {"kept": {"task": "beatkeeper.heartbeat", "every": 60},
                "switched-off": {"task": "beatkeeper.heartbeat", "every": 60},
                "later-removed": {"task": "beatkeeper.heartbeat", "every": 60}}
    env = {"BEATKEEPER_SCHEDULE": _schedule_file(tmp_path, schedule), "SWITCHED_OFF_SCHEDULER_DISABLED": "1"}
    first = processes.celery("beat", "--loglevel=INFO", name="beat1", env=env)
    wait_until(lambda: redis_client.exists("redbeat:kept"), timeout_s=START_TIMEOUT_S, what="redbeat:kept")
    assert redis_client.exists("redbeat:later-removed")
    assert not redis_client.exists("redbeat:switched-off")
    assert "entry 'switched-off' left out: SWITCHED_OFF_SCHEDULER_DISABLED is set" in first.log_path.read_text()
    # recorded after the entries are stored: read before it lands, the second start has no change to see
    wait_until(lambda: redis_client.get("beatkeeper:schedule:fingerprint"), timeout_s=START_TIMEOUT_S,
               what="the first start's fingerprint")
    fingerprint = redis_client.get("beatkeeper:schedule:fingerprint")
    first.terminate()
    first.wait(timeout=30)

    del schedule["later-removed"]
    env["BEATKEEPER_SCHEDULE"] = _schedule_file(tmp_path, schedule)
    second = processes.celery("beat", "--loglevel=INFO", name="beat2", env=env)
    wait_until(lambda: not redis_client.exists("redbeat:later-removed"), timeout_s=START_TIMEOUT_S,
               what="the removed entry to leave redbeat")
    assert redis_client.exists("redbeat:kept") and not redis_client.exists("redbeat:switched-off")
    assert second.poll() is None
    wait_until(lambda: redis_client.get("beatkeeper:schedule:fingerprint") != fingerprint, timeout_s=10,
               what="a new fingerprint")
    changed = [f for _, f in redis_client.xrange("beatkeeper:events") if f["kind"] == "schedule_changed"]
    assert len(changed) == 1

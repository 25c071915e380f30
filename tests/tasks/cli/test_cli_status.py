"""``beatkeeper status``: the one screen, and its JSON, from real Redis, a real history and the real app."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from monitoring.alerts import ActiveAlert, Alert, AlertStore, Severity
from monitoring.heartbeats import HeartbeatRun, record_heartbeat
from monitoring.history import RunRecord
from tasks.cli import main
from tasks.guard.pause import PauseStore
from tests.monitoring.databases import app_history, sqlite_url  # noqa: F401  (fixtures)
from tests.servers import free_port

SCHEDULE = {
    "nightly": {"task": "beatkeeper.heartbeat", "cron": "0 3 * * *", "timezone": "Australia/Sydney"},
    "poll": {"task": "beatkeeper.heartbeat", "every": 30},
}


@pytest.fixture
def deployment(monkeypatch, tmp_path, redis_client, app_history):
    """The schedule above, registered by "beat", with a run history, a pause, a held lock and a firing alert."""
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(SCHEDULE))
    monkeypatch.setenv("BEATKEEPER_SCHEDULE", str(path))
    monkeypatch.setenv("BEATKEEPER_DISABLE", "beatkeeper-heartbeat")
    now = time.time()
    # redbeat scores are fire instants: whole seconds here
    redis_client.zadd("redbeat::schedule", {"redbeat:poll": int(now) + 12, "redbeat:nightly": int(now) + 7200})
    redis_client.set("redbeat::lock", "beat", px=25_000)
    record_heartbeat(redis_client, HeartbeatRun(executed_at=now - 20, worker="w1", task_id="hb", scheduled_at=now - 21))
    finished = datetime.fromtimestamp(now - 40, timezone.utc)
    app_history.write([
        RunRecord(task_name="beatkeeper.heartbeat", task_id="p1", status="success", entry="poll",
                  fire_at=finished - timedelta(seconds=1), started_at=finished - timedelta(seconds=1),
                  finished_at=finished),
        RunRecord(task_name="beatkeeper.heartbeat", task_id="n1", status="failure", entry="nightly",
                  fire_at=finished - timedelta(hours=20), started_at=finished - timedelta(hours=20),
                  finished_at=finished - timedelta(hours=19), error_type="TimeoutError", error_message="slow feed"),
    ])
    PauseStore(redis_client).pause("nightly", now=now, reason="feed migration", by="ops")
    redis_client.set("beatkeeper:lock:beatkeeper.heartbeat:args=abc", "token", px=40_000)
    redis_client.hset("beatkeeper:lock:beatkeeper.heartbeat:args=abc:meta", "holder",
                      json.dumps({"task_id": "p2", "hostname": "default@host-a", "entry": "poll"}))
    store = AlertStore(redis_client)
    store.put(ActiveAlert(Alert("run_failed", "nightly", Severity.WARNING, "nightly failed: TimeoutError"),
                          since=now - 300, notified_at=now - 300))
    store.flush()
    return now


def status(*args: str, exit_code: int = 0):
    result = CliRunner().invoke(main, ["status", *args])
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    return result.output


def test_the_screen_shows_heartbeats_entries_locks_and_alerts(deployment):
    screen = status("--no-workers")
    lines = screen.splitlines()
    assert "beat 21 s ago" in screen and "worker:w1 20 s ago" in screen
    assert "beat lock    held (25 s left)" in screen
    nightly = next(line for line in lines if line.startswith("nightly "))
    poll = next(line for line in lines if line.startswith("poll "))
    assert "PAUSED" in nightly and "nightly paused by ops until resumed: feed migration" in nightly
    assert "failure at" in nightly
    next_poll = datetime.fromtimestamp(int(deployment) + 12, timezone.utc)
    assert poll.split()[1] == "ok" and "success at" in poll
    assert f"{next_poll.isoformat(timespec='seconds')} ({next_poll.strftime('%Y-%m-%dT%H:%M:%SZ')})" in poll
    assert "+10:00 (" in nightly or "+11:00 (" in nightly  # Sydney local time, then UTC
    assert "beatkeeper:lock:beatkeeper.heartbeat:args=abc  p2 on default@host-a, 40 s left" in screen
    assert "[warning] run_failed nightly: nightly failed: TimeoutError" in screen
    assert "workers      not asked" in screen


def test_json_holds_the_same_facts(deployment):
    report = json.loads(status("--json", "--no-workers"))
    entries = {e["name"]: e for e in report["entries"]}
    assert entries["nightly"]["state"] == "paused" and entries["nightly"]["alerts"] == ["run_failed"]
    assert entries["poll"]["last_run"]["status"] == "success"
    assert entries["poll"]["next_fire_at"] == datetime.fromtimestamp(int(deployment) + 12, timezone.utc).isoformat()
    assert report["heartbeat_ages_s"]["beat"] == pytest.approx(21, abs=2)
    assert [lock["key"] for lock in report["locks"]] == ["beatkeeper:lock:beatkeeper.heartbeat:args=abc"]
    assert report["problems"] == [] and report["workers"] is None


def test_workers_and_their_queues_are_listed(deployment, worker):
    screen = status("--inspect-timeout", "1")
    assert "default, singleton" in screen
    assert "queue        default: 0 waiting, 1 consumer(s)" in screen


def test_redis_down_says_so_first_exits_3_and_still_shows_the_entries(deployment, app, monkeypatch):
    port = free_port()
    monkeypatch.setitem(app.conf, "redis_url", f"redis://:s3cret@127.0.0.1:{port}/0")
    screen = status(exit_code=3)  # workers are not asked: they answer through the same Redis
    assert screen.splitlines()[0].startswith(f"beatkeeper: Redis unreachable at REDIS_URL=redis://:**@127.0.0.1:{port}/0: ")
    assert "s3cret" not in screen
    assert "could not read" in screen and "Redis is unreachable" in screen and "workers      not asked" in screen
    assert any(line.startswith("nightly ") for line in screen.splitlines())

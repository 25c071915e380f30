"""Beat (the real redbeat-backed scheduler, real Redis, injected clock) dispatches exactly the
instants `beatkeeper plan` lists — the same code computes both — through DST transitions
and across restarts in the middle of a gap and of a repeated hour."""
from __future__ import annotations

import json
import os
from types import SimpleNamespace
from datetime import datetime, timedelta, timezone

import pytest

from schedules.killswitch import partition_enabled
from schedules.plan import build_plan
from tasks.beat.schedule_source import load_validated_schedule
from tests.tasks.beat.harness import BeatDriver, utc

SCHEDULE = {
    "sydney-0230": {"task": "beatkeeper.heartbeat", "cron": "30 2 * * *", "timezone": "Australia/Sydney"},
    "sydney-half-hourly": {"task": "beatkeeper.heartbeat", "cron": "*/30 * * * *", "timezone": "Australia/Sydney"},
    "sydney-0300": {"task": "beatkeeper.heartbeat", "cron": "0 3 * * *", "timezone": "Australia/Sydney"},
    "new-york-weekdays": {"task": "beatkeeper.heartbeat", "cron": "0 9 * * mon-fri", "timezone": "America/New_York"},
    "every-15m": {"task": "beatkeeper.heartbeat", "every": "15m"},
    "alert-matcher": {"task": "beatkeeper.heartbeat", "timezone": "Australia/Sydney", "windows": [
        {"hours": "7-9,17-19", "days": "mon-fri", "every": "20m"}, {"every": "1h"}]},
    "one-off": {"task": "beatkeeper.heartbeat", "at": "2026-10-05T10:00:00", "timezone": "Australia/Sydney"},
}


def _planned(app, start, end) -> dict[str, list[datetime]]:
    """What `beatkeeper plan` lists for the schedule beat registers (kill switches applied)."""
    validated = load_validated_schedule(app, now=start)
    _, left_out = partition_enabled(validated, os.environ)
    plan = build_plan(validated, start=start, end=end, cost_per_worker_hour=0.0, left_out=left_out).to_json()
    return {name: [datetime.fromisoformat(t).astimezone(timezone.utc) for t in body["fires"]]
            for name, body in plan["entries"].items()}


def _assert_beat_dispatched_the_plan(driver: BeatDriver, planned: dict[str, list[datetime]]) -> None:
    for name, fires in planned.items():
        assert driver.fires_of(name) == fires, name
    assert len(driver.sent) == sum(len(f) for f in planned.values())


def test_simulated_week_across_sydney_spring_forward_dispatches_exactly_the_planned_instants(
        app, redis_client, monkeypatch, tmp_path):
    start, end = utc(2026, 9, 30, 0, 0, 30), utc(2026, 10, 7, 0, 0, 30)
    driver = BeatDriver(app, monkeypatch, tmp_path, SCHEDULE, start=start)
    planned = _planned(app, start, end)
    driver.run_until(end)
    _assert_beat_dispatched_the_plan(driver, planned)
    # the DST rule itself, as beat applied it: 02:30 on 2026-10-04 does not exist -> 03:00 AEDT once
    assert utc(2026, 10, 3, 16, 0) in driver.fires_of("sydney-0230")
    assert driver.fires_of("sydney-0300").count(utc(2026, 10, 3, 16, 0)) == 1


@pytest.mark.parametrize("restart_at", [
    pytest.param(utc(2026, 10, 3, 16, 0), id="restart_at_the_spring_forward_gap"),
    pytest.param(utc(2027, 4, 3, 15, 45), id="restart_in_the_first_pass_of_the_repeated_hour"),
    pytest.param(utc(2027, 4, 3, 16, 20), id="restart_in_the_second_pass_of_the_repeated_hour"),
])
def test_restart_in_the_middle_of_a_transition_neither_loses_nor_doubles_an_instant(
        app, redis_client, monkeypatch, tmp_path, restart_at):
    start, end = restart_at - timedelta(days=1, seconds=-30), restart_at + timedelta(days=1)
    schedule = {k: v for k, v in SCHEDULE.items() if k.startswith("sydney")}
    driver = BeatDriver(app, monkeypatch, tmp_path, schedule, start=start)
    planned = _planned(app, start, end)
    driver.run_until(restart_at)
    driver.restart()
    driver.run_until(end)
    _assert_beat_dispatched_the_plan(driver, planned)


def test_fall_back_day_in_sydney_fires_the_repeated_half_hours_twice_and_0230_once(
        app, redis_client, monkeypatch, tmp_path):
    start, end = utc(2027, 4, 3, 12, 0, 30), utc(2027, 4, 3, 20, 0, 30)
    schedule = {k: v for k, v in SCHEDULE.items() if k.startswith("sydney")}
    driver = BeatDriver(app, monkeypatch, tmp_path, schedule, start=start)
    driver.run_until(end)
    assert driver.fires_of("sydney-0230") == [utc(2027, 4, 3, 15, 30)]  # 02:30 AEDT only
    half_hourly = driver.fires_of("sydney-half-hourly")
    # 23:00 AEDT .. 06:00 AEST: 02:00 and 02:30 happen in both passes
    assert utc(2027, 4, 3, 15, 0) in half_hourly and utc(2027, 4, 3, 16, 0) in half_hourly
    assert utc(2027, 4, 3, 15, 30) in half_hourly and utc(2027, 4, 3, 16, 30) in half_hourly
    assert len(half_hourly) == 16


def test_entry_policies_are_published_for_the_workers_and_never_ride_on_the_message(
        app, redis_client, monkeypatch, tmp_path):
    from tasks.beat.scheduler import BeatkeeperScheduler
    from tasks.headers import BEAT_FENCE, ENTRY, FIRE_AT, dispatch_headers
    from tasks.policy import PUBLISHED_ENTRY_POLICIES_KEY, PUBLISHED_POLICIES_KEY

    schedule = {"sweep": {"task": "beatkeeper.heartbeat", "every": 60, "overlap": "buffer_one",
                          "lock_ttl": 90, "max_runtime": "5m", "time_limit": "10m", "queue": "singleton",
                          "retry": {"max_retries": 2, "backoff": "30s", "on": ["TimeoutError"]}}}
    start = utc(2026, 11, 2, 0, 0, 30)
    driver = BeatDriver(app, monkeypatch, tmp_path, schedule, start=start)
    published = json.loads(redis_client.hget(PUBLISHED_POLICIES_KEY, "beatkeeper.heartbeat"))
    assert published["overlap"] == "buffer_one" and published["lock_ttl_s"] == 90
    assert published["max_runtime_s"] == 300 and published["time_limit_s"] == 600
    by_entry = json.loads(redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "sweep"))
    assert by_entry == {"task": "beatkeeper.heartbeat",
                        "policy": {"overlap": "buffer_one", "lock_ttl_s": 90, "max_runtime_s": 300,
                                   "time_limit_s": 600},
                        "retry": {"max_retries": 2, "backoff_s": 30, "backoff_max_s": 600, "jitter": True,
                                  "on": ["TimeoutError"]}}
    entry = driver.scheduler._load_entries(redis_client, ["redbeat:sweep"])[0]
    assert entry.options == {"queue": "singleton", "time_limit": 600}
    sent = []
    monkeypatch.setattr(app.tasks["beatkeeper.heartbeat"], "apply_async",
                        lambda args, kwargs, **options: sent.append(options) or SimpleNamespace(id="t-1"))
    # the real publish, not the recorder; it returns the dispatch beat watches until a worker claims it
    dispatch = BeatkeeperScheduler._publish(driver.scheduler, entry, start, None)
    assert (dispatch.entry, dispatch.task_id, dispatch.queue) == ("sweep", "t-1", "singleton")
    assert dispatch.run_id == f"sweep|{start.isoformat()}"
    # Which entry and instant, and the sending beat's fence: no policy (the workers read the published one).
    assert set(sent[0]["headers"]) <= {ENTRY, FIRE_AT, BEAT_FENCE}
    assert sent[0]["headers"][ENTRY] == "sweep"
    assert sent[0]["queue"] == "singleton" and sent[0]["time_limit"] == 600
    assert dispatch_headers("sweep", start)["beatkeeper_fire_at"] == sent[0]["headers"]["beatkeeper_fire_at"]

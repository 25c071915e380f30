"""Beat down for a simulated 5 hours: each catch-up policy runs exactly what it says.

Expected instants are computed here with plain datetime arithmetic, independently of the
triggers and of ``schedules.catchup``."""
from __future__ import annotations

import json

from datetime import datetime, timedelta

import pytest

from tasks.guard.claim import RUN_KEY_PREFIX, record_key, run_id_for
from tests.tasks.beat.harness import BeatDriver, utc

STOP_AT = utc(2026, 11, 2, 1, 0, 30)  # beat dies
BACK_AT = STOP_AT + timedelta(hours=5)  # 06:00:30 UTC: beat is back
DOWN_FROM = utc(2026, 11, 2, 0, 0, 30)


def _instants(first: datetime, step: timedelta, after: datetime, until: datetime) -> list[datetime]:
    out, t = [], first
    while t <= until:
        if t > after:
            out.append(t)
        t += step
    return out


MISSED = {  # what fell due while beat was down, by plain arithmetic
    "hourly": _instants(utc(2026, 11, 2, 0, 0), timedelta(hours=1), STOP_AT, BACK_AT),
    "minutely": _instants(utc(2026, 11, 2, 0, 0), timedelta(minutes=1), STOP_AT, BACK_AT),
    "daily": _instants(utc(2026, 11, 2, 3, 0), timedelta(days=1), STOP_AT, BACK_AT),
}
SCHEDULES = {"hourly": {"cron": "0 * * * *"}, "minutely": {"every": 60}, "daily": {"cron": "0 3 * * *"}}


def _expected(policy: str, name: str, *, window: timedelta | None, cap: int) -> list[datetime]:
    missed = MISSED[name]
    if window is not None:
        missed = [t for t in missed if t >= BACK_AT - window]
    if policy == "skip" or not missed:
        return []
    if policy == "latest":
        return missed[-1:]
    return missed[-cap:]


@pytest.mark.parametrize("policy,window_h,cap", [
    pytest.param("skip", None, 10, id="skip_runs_nothing_missed"),
    pytest.param("latest", None, 10, id="latest_runs_the_most_recent_missed_instant"),
    pytest.param("latest", 0.25, 10, id="latest_ignores_instants_missed_before_its_window"),
    pytest.param("all", None, 10, id="all_runs_each_missed_instant_up_to_the_cap"),
    pytest.param("all", 3, 100, id="all_runs_only_instants_within_the_window"),
])
def test_beat_down_five_hours_runs_what_the_catchup_policy_says(app, redis_client, monkeypatch, tmp_path,
                                                                policy, window_h, cap):
    entry_extra = {"catchup": policy, "catchup_max": cap}
    if window_h is not None:
        entry_extra["catchup_window"] = int(window_h * 3600)
    schedule = {name: {"task": "beatkeeper.heartbeat", **kind, **entry_extra} for name, kind in SCHEDULES.items()}
    driver = BeatDriver(app, monkeypatch, tmp_path, schedule, start=DOWN_FROM, max_interval_s=5,
                        env={"BEATKEEPER_MAX_RUNS_PER_HOUR": "10000"})
    driver.run_until(STOP_AT)
    before = {name: list(driver.fires_of(name)) for name in SCHEDULES}
    assert before["minutely"] == _instants(utc(2026, 11, 2, 0, 1), timedelta(minutes=1), DOWN_FROM, STOP_AT)

    driver.clock.now = BACK_AT
    driver.restart()
    driver.scheduler.tick()
    if policy == "all":  # one catch-up instant of an entry per tick (no run to wait for here)
        assert all(len(driver.fires_of(name)) <= len(before[name]) + 1 for name in SCHEDULES)
        for _ in range(cap + 1):
            driver.scheduler.tick()
    window = None if window_h is None else timedelta(hours=window_h)
    for name in SCHEDULES:
        caught_up = driver.fires_of(name)[len(before[name]):]
        assert caught_up == _expected(policy, name, window=window, cap=cap), name
    missed_events = {f["subject"]: f for _, f in redis_client.xrange("beatkeeper:events") if f["kind"] == "missed_runs"}
    for name in SCHEDULES:
        not_run = len(MISSED[name]) - len(_expected(policy, name, window=window, cap=cap))
        assert (name in missed_events) == (not_run > 0)

    # nothing runs twice afterwards, and the next regular instants follow on time
    driver.run_until(BACK_AT + timedelta(minutes=3))
    assert driver.fires_of("minutely")[-3:] == [utc(2026, 11, 2, 6, 1), utc(2026, 11, 2, 6, 2), utc(2026, 11, 2, 6, 3)]
    assert len(set(driver.sent)) == len(driver.sent)


def test_catchup_all_sends_the_next_missed_instant_only_once_the_previous_run_ended(
        app, redis_client, monkeypatch, tmp_path):
    """The test plays the worker's claim on each run (``tasks.guard.claim``)."""
    schedule = {"minutely": {"task": "beatkeeper.heartbeat", "every": 60, "catchup": "all"}}
    driver = BeatDriver(app, monkeypatch, tmp_path, schedule, start=DOWN_FROM, max_interval_s=5)
    driver.run_until(STOP_AT)
    missed = _instants(utc(2026, 11, 2, 0, 0), timedelta(minutes=1), STOP_AT, STOP_AT + timedelta(minutes=4))
    driver.clock.now = STOP_AT + timedelta(minutes=4)
    driver.restart()
    before = len(driver.sent)

    def claim(instant, state: str, *, leased: bool) -> None:
        run_id = run_id_for(entry="minutely", fire_at=instant, task_id="")
        redis_client.hset(record_key(run_id), mapping={"state": state, "fence": 1})
        if leased:
            redis_client.set(RUN_KEY_PREFIX + run_id, "worker-token", px=60_000)
        else:
            redis_client.delete(RUN_KEY_PREFIX + run_id)

    def tick_sends() -> list[datetime]:
        sent = len(driver.sent)
        driver.scheduler.tick()
        return [at for _, at in driver.sent[sent:]]

    assert tick_sends() == missed[:1]
    claim(missed[0], "running", leased=True)
    assert tick_sends() == [] and tick_sends() == []  # held while the first runs
    claim(missed[0], "succeeded", leased=False)
    assert tick_sends() == missed[1:2]
    claim(missed[1], "retrying", leased=False)  # waiting for its own retry: still in flight
    assert tick_sends() == []
    claim(missed[1], "failed", leased=False)
    assert tick_sends() == missed[2:3]
    claim(missed[2], "running", leased=False)  # its worker died: the lease lapsed, the run is over
    assert tick_sends() == missed[3:4]
    claim(missed[3], "skipped", leased=False)
    assert tick_sends() == []  # caught up; the next instant is not due yet
    assert [at for _, at in driver.sent[before:]] == missed
    assert not [f for _, f in redis_client.xrange("beatkeeper:events") if f["kind"] == "missed_runs"]


def test_a_clock_stepping_backward_never_refires_an_instant(app, redis_client, monkeypatch, tmp_path):
    schedule = {"minutely": {"task": "beatkeeper.heartbeat", "every": 60}}
    driver = BeatDriver(app, monkeypatch, tmp_path, schedule, start=DOWN_FROM, max_interval_s=5)
    driver.run_until(DOWN_FROM + timedelta(minutes=10))
    sent = list(driver.sent)
    driver.clock.now = DOWN_FROM + timedelta(minutes=2)  # NTP steps the clock back 8 minutes
    driver.run_until(DOWN_FROM + timedelta(minutes=12))
    assert driver.sent[:len(sent)] == sent
    assert driver.fires_of("minutely")[len(sent):] == [utc(2026, 11, 2, 0, 11), utc(2026, 11, 2, 0, 12)]


@pytest.mark.parametrize("stranger", [
    pytest.param(False, id="deleted_the_count_changes_and_it_is_noticed_at_once"),
    pytest.param(True, id="swapped_for_a_stranger_the_count_holds_and_the_periodic_reconcile_finds_it"),
])
def test_an_entry_deleted_behind_beats_back_is_restored_and_reported(app, redis_client, monkeypatch, tmp_path,
                                                                     stranger):
    schedule = {"minutely": {"task": "beatkeeper.heartbeat", "every": 60},
                "hourly": {"task": "beatkeeper.heartbeat", "cron": "0 * * * *"}}
    driver = BeatDriver(app, monkeypatch, tmp_path, schedule, start=DOWN_FROM, max_interval_s=5)
    driver.run_until(DOWN_FROM + timedelta(minutes=2))
    redis_client.delete("redbeat:hourly")
    redis_client.zrem("redbeat::schedule", "redbeat:hourly")
    if stranger:  # never due here: only a full look finds it
        redis_client.zadd("redbeat::schedule", {"redbeat:stranger": (DOWN_FROM + timedelta(days=1)).timestamp()})
        redis_client.hset("redbeat:stranger", "definition", "{}")
    driver.run_until(DOWN_FROM + timedelta(minutes=65))
    assert redis_client.exists("redbeat:hourly") and not redis_client.exists("redbeat:stranger")
    assert driver.fires_of("hourly") == [utc(2026, 11, 2, 1, 0)]
    restored = [f for _, f in redis_client.xrange("beatkeeper:events") if f["kind"] == "schedule_entry_restored"]
    assert [f["subject"] for f in restored] == ["hourly"]


def test_a_due_key_that_is_not_a_registered_entry_is_removed_not_run(app, redis_client, monkeypatch, tmp_path):
    schedule = {"minutely": {"task": "beatkeeper.heartbeat", "every": 60}}
    driver = BeatDriver(app, monkeypatch, tmp_path, schedule, start=DOWN_FROM, max_interval_s=5)
    # what redbeat's own API writes: a definition beat cannot run (a stock crontab)
    redis_client.hset("redbeat:foreign", mapping={"definition": json.dumps(
        {"name": "foreign", "task": "beatkeeper.heartbeat", "schedule": {"__type__": "crontab", "minute": "*"}}),
        "meta": json.dumps({"last_run_at": None})})
    redis_client.zadd("redbeat::schedule", {"redbeat:foreign": DOWN_FROM.timestamp()})
    driver.run_until(DOWN_FROM + timedelta(minutes=3))
    assert not redis_client.exists("redbeat:foreign")
    assert redis_client.zscore("redbeat::schedule", "redbeat:foreign") is None
    assert len(driver.fires_of("minutely")) == 3 and driver.fires_of("foreign") == []

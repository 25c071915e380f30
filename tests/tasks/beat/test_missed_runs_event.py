"""What beat sends and records after a 5 h outage for entries that leave catch-up at its defaults
(README: policy ``latest``, window 24 h, ``catchup_max`` 10 for ``all``), and exactly what the
``missed_runs`` event says. Expected instants are written out, not computed by beat's code."""
from __future__ import annotations

from datetime import datetime, timedelta

from monitoring.events import read_events
from tests.tasks.beat.harness import BeatDriver, utc

START = utc(2026, 11, 2, 0, 0, 30)
STOP_AT = utc(2026, 11, 2, 1, 0, 30)  # beat dies
BACK_AT = STOP_AT + timedelta(hours=5)  # 06:00:30 UTC: even 06:00 is 30 s old, past beat's 10 s on-time slack


def minutes(first: datetime, last: datetime) -> list[datetime]:
    return [first + timedelta(minutes=n) for n in range(int((last - first).total_seconds() // 60) + 1)]


def test_after_an_outage_the_default_catchup_runs_and_the_missed_runs_events_say_exactly_what(
        app, redis_client, monkeypatch, tmp_path):
    schedule = {"hourly": {"task": "beatkeeper.heartbeat", "cron": "0 * * * *"},  # every catch-up key default
                "minutely-all": {"task": "beatkeeper.heartbeat", "every": 60, "catchup": "all"}}  # cap default
    driver = BeatDriver(app, monkeypatch, tmp_path, schedule, start=START, max_interval_s=5,
                        env={"BEATKEEPER_MAX_RUNS_PER_HOUR": "10000"})
    driver.run_until(STOP_AT)
    sent_before = {name: len(driver.fires_of(name)) for name in schedule}
    driver.clock.now = BACK_AT
    driver.restart()
    driver.scheduler.tick()
    # `all` sends one catch-up instant per tick (README: each only once the previous run ended;
    # the recorder publishes nothing, so no run holds the next): tick until the cap is drained.
    assert len(driver.fires_of("minutely-all")) == sent_before["minutely-all"] + 1
    for _ in range(10):
        driver.scheduler.tick()

    assert driver.fires_of("hourly")[sent_before["hourly"]:] == [utc(2026, 11, 2, 6, 0)]  # latest only
    assert driver.fires_of("minutely-all")[sent_before["minutely-all"]:] == minutes(utc(2026, 11, 2, 5, 51),
                                                                                    utc(2026, 11, 2, 6, 0))
    events = {event.subject: event.data for event in read_events(redis_client, kind="missed_runs")}
    hourly_missed = [utc(2026, 11, 2, hour, 0).isoformat() for hour in (2, 3, 4, 5)]
    assert _fields(events["hourly"]) == {"count": 4, "first": hourly_missed[0], "last": hourly_missed[-1],
                                         "instants": hourly_missed, "capped": False}
    # 01:01 to 06:00 fell due: the newest 10 ran, 290 were missed, of which the newest 50 are listed.
    listed = [t.isoformat() for t in minutes(utc(2026, 11, 2, 5, 1), utc(2026, 11, 2, 5, 50))]
    assert _fields(events["minutely-all"]) == {"count": 290, "first": utc(2026, 11, 2, 1, 1).isoformat(),
                                               "last": listed[-1], "instants": listed, "capped": True}
    assert set(events) == {"hourly", "minutely-all"}


def _fields(data: dict) -> dict:
    return {key: data.get(key) for key in ("count", "first", "last", "instants", "capped")}

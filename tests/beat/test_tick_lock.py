"""Each tick renews the beat lock in the same round trip that reads what is due
(``tasks.due_read``), and dispatches nothing unless the lock is still ours.
Real scheduler, real Redis, injected clock."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.beat.harness import BeatDriver, utc

START = utc(2026, 11, 2, 0, 0, 30)
DUE = utc(2026, 11, 2, 0, 1)
SCHEDULE = {"every-minute": {"task": "beatkeeper.heartbeat", "every": 60}}


@pytest.fixture
def driver(app, redis_client, monkeypatch, tmp_path):
    driver = BeatDriver(app, monkeypatch, tmp_path, SCHEDULE, start=START)
    scheduler = driver.scheduler
    scheduler.lock = redis_client.lock(scheduler.lock_key, timeout=scheduler.lock_timeout)
    assert scheduler.lock.acquire(blocking=False)
    driver.clock.now = DUE
    return driver


def test_a_tick_renews_the_lock_to_the_full_lock_timeout(driver, redis_client):
    key = driver.scheduler.lock_key
    redis_client.pexpire(key, 1000)
    driver.scheduler.tick()
    assert redis_client.pttl(key) > driver.scheduler.lock_timeout * 1000 - 5000
    assert driver.fires_of("every-minute") == [DUE]


def test_a_tick_whose_lock_another_beat_holds_dispatches_nothing(driver, redis_client):
    redis_client.set(driver.scheduler.lock_key, "another-beat", px=30_000)
    with pytest.raises(AssertionError, match="lost the beat lock"):
        driver.scheduler.tick()
    assert driver.sent == [] and redis_client.get(driver.scheduler.lock_key) == "another-beat"


def test_a_lock_that_expired_unclaimed_is_taken_back_and_the_tick_goes_on(driver, redis_client):
    redis_client.delete(driver.scheduler.lock_key)  # Redis was away longer than the lock timeout
    driver.scheduler.tick()
    assert redis_client.get(driver.scheduler.lock_key) == driver.scheduler.lock.local.token.decode()
    assert driver.fires_of("every-minute") == [DUE]
    driver.clock.now = DUE + timedelta(seconds=60)
    driver.scheduler.tick()
    assert driver.fires_of("every-minute") == [DUE, DUE + timedelta(seconds=60)]

"""The beat lock's life (``tasks.beat.lock``): a beat takes it at a tick without waiting, or
stands by; each tick renews it in the same round trip that reads what is due
(``tasks.beat.due_read``) and dispatches nothing unless the lock is still ours; each acquire bumps
the fencing epoch, and every dispatch carries the fence. Real scheduler, real Redis, injected clock."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from tasks import headers
from tasks.beat.scheduler import BeatkeeperScheduler
from tests.tasks.beat.harness import BeatDriver, utc

START = utc(2026, 11, 2, 0, 0, 30)
DUE = utc(2026, 11, 2, 0, 1)
SCHEDULE = {"every-minute": {"task": "beatkeeper.heartbeat", "every": 60}}


def epoch(redis_client) -> dict[str, str]:
    return redis_client.hgetall(headers.BEAT_EPOCH_KEY)


@pytest.fixture
def driver(app, redis_client, monkeypatch, tmp_path):
    """A beat that took the lock at its first tick (nothing due yet)."""
    driver = BeatDriver(app, monkeypatch, tmp_path, SCHEDULE, start=START)
    driver.scheduler.tick()
    assert redis_client.get(driver.scheduler.lock_key) == driver.scheduler.lock.local.token.decode()
    driver.clock.now = DUE
    return driver


def test_the_first_tick_takes_the_lock_with_the_next_fence(driver, redis_client):
    assert epoch(redis_client) == {"fence": "1", "since": repr(START.timestamp())}
    assert driver.scheduler._beat_lock.fence == 1


def test_a_tick_renews_the_lock_to_the_full_lock_timeout(driver, redis_client):
    key = driver.scheduler.lock_key
    redis_client.pexpire(key, 1000)
    driver.scheduler.tick()
    assert redis_client.pttl(key) > driver.scheduler.lock_timeout * 1000 - 5000
    assert driver.fires_of("every-minute") == [DUE]
    assert epoch(redis_client)["fence"] == "1"  # a renewal is no new acquire


def test_a_tick_whose_lock_another_beat_holds_dispatches_nothing(driver, redis_client):
    redis_client.set(driver.scheduler.lock_key, "another-beat", px=30_000)
    with pytest.raises(AssertionError, match="lost the beat lock"):
        driver.scheduler.tick()
    assert driver.sent == [] and redis_client.get(driver.scheduler.lock_key) == "another-beat"
    assert not driver.scheduler._beat_lock.held


def test_a_lock_that_expired_unclaimed_is_taken_back_with_a_new_fence_and_the_tick_goes_on(driver, redis_client):
    redis_client.delete(driver.scheduler.lock_key)  # Redis was away longer than the lock timeout
    driver.scheduler.tick()
    assert redis_client.get(driver.scheduler.lock_key) == driver.scheduler.lock.local.token.decode()
    assert epoch(redis_client) == {"fence": "2", "since": repr(DUE.timestamp())}
    assert driver.fires_of("every-minute") == [DUE]
    driver.clock.now = DUE + timedelta(seconds=60)
    driver.scheduler.tick()
    assert driver.fires_of("every-minute") == [DUE, DUE + timedelta(seconds=60)]


def test_a_standby_dispatches_nothing_and_takes_the_lock_once_it_is_free(app, redis_client, monkeypatch, tmp_path):
    redis_client.set("redbeat::lock", "the-leader", px=60_000)
    driver = BeatDriver(app, monkeypatch, tmp_path, SCHEDULE, start=START)
    driver.clock.now = DUE + timedelta(seconds=30)
    assert driver.scheduler.tick() == driver.max_interval_s  # tries again at the next tick
    assert driver.sent == [] and not driver.scheduler._beat_lock.held
    assert redis_client.get("redbeat::lock") == "the-leader" and epoch(redis_client) == {}
    redis_client.delete("redbeat::lock")  # the leader died and its lock lapsed
    driver.scheduler.tick()
    assert driver.fires_of("every-minute") == [DUE] and driver.scheduler._beat_lock.fence == 1


def test_every_dispatch_carries_the_fence_of_the_lock_it_was_sent_under(driver, app, redis_client, monkeypatch):
    sent = []
    monkeypatch.setattr(app.tasks["beatkeeper.heartbeat"], "apply_async",
                        lambda args, kwargs, **options: sent.append(options) or SimpleNamespace(id="t-1"))
    entry = driver.scheduler._load_entries(redis_client, ["redbeat:every-minute"])[0]
    BeatkeeperScheduler._publish(driver.scheduler, entry, DUE, None)
    redis_client.delete(driver.scheduler.lock_key)
    driver.scheduler.tick()  # retakes the lock: fence 2
    BeatkeeperScheduler._publish(driver.scheduler, entry, DUE, None, expires_at=DUE.timestamp() + 60)  # a re-send
    assert [options["headers"][headers.BEAT_FENCE] for options in sent] == ["1", "2"]

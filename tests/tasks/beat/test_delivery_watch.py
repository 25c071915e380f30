"""A dispatch the broker accepted but no worker received is sent again (``tasks.beat.delivery_watch``).

Real beat scheduler, real Redis broker, injected clock; no worker: the test plays the broker's
consumer side by moving the message itself (out of the queue, into the unacked hash, claimed).
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from monitoring.events import read_events
from monitoring.rules.events import EVENT_RULES
from tasks.beat import delivery_watch
from tasks.beat.scheduler import BeatkeeperScheduler
from tasks.headers import ENTRY, FIRE_AT
from tasks.guard.identity import record_key
from tests.tasks.beat.harness import BeatDriver, utc

QUEUE = "default"
START = utc(2026, 11, 2, 0, 59, 30)
FIRE = utc(2026, 11, 2, 1, 0)  # hourly entries: no second instant within a test


class PublishingScheduler(BeatkeeperScheduler):
    """The real scheduler, publishing to the real broker."""

    def on_lock_lost(self, exc: Exception) -> None:
        raise AssertionError(f"lost the beat lock: {exc}")


class Driver(BeatDriver):
    def start(self) -> PublishingScheduler:
        return PublishingScheduler(app=self.app, max_interval=self.max_interval_s,
                                   lock_timeout=5 * self.max_interval_s, lazy=False)

    def tick_at(self, moment) -> None:
        self.clock.now = moment
        self.scheduler.tick()


def queued(client) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(QUEUE, 0, -1)]


def pending(client) -> list[delivery_watch.Dispatch]:
    return [delivery_watch.Dispatch.from_member(m) for m in client.zrange(delivery_watch.PENDING_KEY, 0, -1)]


@pytest.fixture
def driver(app, redis_client, monkeypatch, tmp_path):
    schedule = {"sweep": {"task": "beatkeeper.heartbeat", "every": "1h", "expires": "1h"}}
    driver = Driver(app, monkeypatch, tmp_path, schedule, start=START)
    driver.tick_at(FIRE)
    return driver


def test_a_dispatch_is_watched_until_its_run_is_claimed(driver, redis_client):
    [message] = queued(redis_client)
    [dispatch] = pending(redis_client)
    assert (dispatch.task_id, dispatch.queue, dispatch.resends) == (message["headers"]["id"], QUEUE, 0)
    assert dispatch.run_id == f"sweep|{FIRE.isoformat()}"

    # in its queue past the grace: on its way, not sent again
    driver.tick_at(FIRE + timedelta(seconds=30))
    assert len(queued(redis_client)) == 1 and len(pending(redis_client)) == 1
    # delivered (kombu lists it as unacked): still not sent again
    raw = redis_client.rpop(QUEUE)
    redis_client.hset("unacked", "tag-1", json.dumps([json.loads(raw), "", QUEUE]))
    driver.tick_at(FIRE + timedelta(seconds=45))
    assert queued(redis_client) == [] and len(pending(redis_client)) == 1
    # claimed by the worker's run identity: forgotten
    redis_client.hset(record_key(dispatch.run_id), "state", "running")
    driver.tick_at(FIRE + timedelta(seconds=50))
    assert pending(redis_client) == [] and queued(redis_client) == []
    assert read_events(redis_client, kind="dispatch_resent") == []


def test_a_dispatch_lost_after_the_broker_took_it_is_sent_again_as_the_same_run(driver, redis_client):
    [first] = pending(redis_client)
    redis_client.delete(QUEUE)  # popped by a consumer whose connection died before it got the message
    driver.tick_at(FIRE + timedelta(seconds=delivery_watch.PICKUP_GRACE_S - 1))
    assert queued(redis_client) == []  # within the grace: nothing yet

    driver.tick_at(FIRE + timedelta(seconds=delivery_watch.PICKUP_GRACE_S + delivery_watch.SWEEP_S))
    [message] = queued(redis_client)
    [again] = pending(redis_client)
    assert message["headers"][ENTRY] == "sweep" and message["headers"][FIRE_AT] == FIRE.isoformat()
    assert message["headers"]["id"] == again.task_id != first.task_id
    assert (again.run_id, again.resends) == (first.run_id, 1)
    # the copy keeps the first message's expiry (an hour after the first publish), not a new one
    assert message["headers"]["expires"] == (FIRE + timedelta(hours=1)).isoformat()
    [event] = read_events(redis_client, kind="dispatch_resent")
    assert (event.subject, event.data["run_id"], event.data["resends"]) == ("sweep", first.run_id, 1)


def test_a_dispatch_lost_every_time_is_reported_after_the_cap(driver, redis_client):
    moment = FIRE
    for _ in range(delivery_watch.MAX_RESENDS + 1):
        redis_client.delete(QUEUE)
        moment += timedelta(seconds=delivery_watch.PICKUP_GRACE_S + delivery_watch.SWEEP_S)
        driver.tick_at(moment)
    assert pending(redis_client) == [] and queued(redis_client) == []
    assert len(read_events(redis_client, kind="dispatch_resent")) == delivery_watch.MAX_RESENDS
    [lost] = read_events(redis_client, kind="dispatch_lost")
    assert (lost.subject, lost.data["sends"], lost.data["queue"]) == ("sweep", delivery_watch.MAX_RESENDS + 1, QUEUE)
    severity, summary = EVENT_RULES["dispatch_lost"]
    assert severity.value == "critical" and "never reached a worker" in summary(lost.subject, 1, lost.data)


def test_an_expired_dispatch_is_not_sent_again(app, redis_client, monkeypatch, tmp_path):
    schedule = {"sweep": {"task": "beatkeeper.heartbeat", "every": "1h", "expires": 5}}
    driver = Driver(app, monkeypatch, tmp_path, schedule, start=START)
    driver.tick_at(FIRE)
    redis_client.delete(QUEUE)  # lost, or dropped by the worker as expired: either way, too late now
    driver.tick_at(FIRE + timedelta(seconds=delivery_watch.PICKUP_GRACE_S + delivery_watch.SWEEP_S))
    assert queued(redis_client) == [] and pending(redis_client) == []
    assert read_events(redis_client, kind="dispatch_resent") == []


def test_a_lost_dispatch_of_an_entry_no_longer_scheduled_is_forgotten(driver, app, redis_client, monkeypatch,
                                                                      tmp_path):
    redis_client.delete(QUEUE)
    other = tmp_path / "restarted"
    other.mkdir()
    # beat restarted on a schedule without the entry (its redbeat key is removed at start)
    driver.scheduler.close()
    restarted = Driver(app, monkeypatch, other, {"other": {"task": "beatkeeper.heartbeat", "every": "1h"}},
                       start=FIRE + timedelta(seconds=1))
    restarted.tick_at(FIRE + timedelta(seconds=delivery_watch.PICKUP_GRACE_S + delivery_watch.SWEEP_S))
    assert queued(redis_client) == [] and pending(redis_client) == []
    assert read_events(redis_client, kind="dispatch_resent") == []

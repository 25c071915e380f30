"""A tick's due runs go out in one broker pipeline, and what made single publishes safe still holds
(``tasks.beat.batch_publish``): publish before record, the delivery watch, run-identity headers,
Celery's publish signals, per-entry routing and ``expires``.

Real beat scheduler, real Redis broker, injected clock; the last test runs the batch on a real
worker. That the messages travel in one pipeline is seen from Redis itself: while Celery's
signals fire for each message, none of them is in its queue yet; after the tick all are.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from celery.signals import after_task_publish, before_task_publish

from tasks.beat import delivery_watch
from tasks.headers import BEAT_FENCE, ENTRY, FIRE_AT
from tasks.guard.identity import record_key
from tests.tasks.beat import ledger_tasks
from tests.tasks.beat.harness import BeatDriver, PublishingScheduler, utc
from tests.servers import wait_until

START = utc(2026, 11, 2, 0, 59, 30)
FIRE = utc(2026, 11, 2, 1, 0)  # hourly entries: one instant within a test
ROUTED = "singleton"  # another queue the test worker consumes
SCHEDULE = {
    **{f"burst-{i}": {"task": "beatkeeper.heartbeat", "cron": "0 * * * *"} for i in range(6)},
    "routed": {"task": "beatkeeper.heartbeat", "cron": "0 * * * *", "queue": ROUTED},
    "expiring": {"task": "beatkeeper.heartbeat", "cron": "0 * * * *", "expires": "10m"},
}


class Driver(BeatDriver):
    def start(self) -> PublishingScheduler:
        return PublishingScheduler(app=self.app, max_interval=self.max_interval_s,
                                   lock_timeout=5 * self.max_interval_s, lazy=False)

    def tick_at(self, moment: datetime) -> None:
        self.clock.now = moment
        self.scheduler.tick()


def queued(client, queue: str = "default") -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


@pytest.fixture
def driver(app, redis_client, monkeypatch, tmp_path):
    driver = Driver(app, monkeypatch, tmp_path, SCHEDULE, start=START)
    driver.tick_at(START)  # nothing due yet
    assert queued(redis_client) == []
    return driver


@pytest.fixture
def publishes(redis_client):
    """What Redis held at each of Celery's publish signals: (signal, task id, headers, queued
    messages, dispatches watched, the entry's stored meta)."""
    seen: list[tuple] = []

    def before(sender=None, headers=None, routing_key=None, **_):
        seen.append(("before", headers["id"], dict(headers), routing_key))

    def after(sender=None, headers=None, routing_key=None, **_):
        entry = headers[ENTRY]
        seen.append(("after", headers["id"], redis_client.llen("default") + redis_client.llen(ROUTED),
                     redis_client.zcard(delivery_watch.PENDING_KEY),
                     redis_client.hget(f"redbeat:{entry}", "meta")))
    before_task_publish.connect(before, weak=False)
    after_task_publish.connect(after, weak=False)
    yield seen
    before_task_publish.disconnect(before)
    after_task_publish.disconnect(after)


def test_a_ticks_due_runs_reach_the_broker_together_after_every_signal(driver, redis_client, publishes):
    metas_before = {name: redis_client.hget(f"redbeat:{name}", "meta") for name in SCHEDULE}
    driver.tick_at(FIRE)

    befores = [p for p in publishes if p[0] == "before"]
    afters = [p for p in publishes if p[0] == "after"]
    assert len(befores) == len(afters) == len(SCHEDULE)
    assert [p[1] for p in befores] == [p[1] for p in afters]
    # while the signals fired nothing was in a queue, watched or recorded: the pipeline goes out once
    for _, _, in_queues, watched, meta in afters:
        assert (in_queues, watched) == (0, 0)
    assert {p[4] for p in afters} <= set(metas_before.values())
    # then all of them at once, each recorded after
    messages = queued(redis_client) + queued(redis_client, ROUTED)
    assert sorted(m["headers"]["id"] for m in messages) == sorted(p[1] for p in afters)
    assert redis_client.zcard(delivery_watch.PENDING_KEY) == len(SCHEDULE)
    for name in SCHEDULE:
        assert redis_client.hget(f"redbeat:{name}", "meta") != metas_before[name]


def test_a_batched_dispatch_keeps_identity_headers_routing_and_expiry(driver, redis_client):
    driver.tick_at(FIRE)
    by_entry = {m["headers"][ENTRY]: (queue, m) for queue in ("default", ROUTED) for m in queued(redis_client, queue)}
    assert set(by_entry) == set(SCHEDULE)
    fence = str(driver.scheduler._beat_lock.fence)
    for name, (queue, message) in by_entry.items():
        assert message["headers"][FIRE_AT] == FIRE.isoformat()
        assert message["headers"][BEAT_FENCE] == fence
        assert queue == (ROUTED if name == "routed" else "default")
        assert message["properties"]["delivery_info"]["routing_key"] == queue
        expires = message["headers"]["expires"]
        if name == "expiring":
            assert datetime.fromisoformat(expires) == FIRE + timedelta(minutes=10)
        else:
            assert expires is None
    watched = {d.entry: d for d in map(delivery_watch.Dispatch.from_member,
                                        redis_client.zrange(delivery_watch.PENDING_KEY, 0, -1))}
    assert watched["routed"].queue == ROUTED
    assert watched["expiring"].expires_at == (FIRE + timedelta(minutes=10)).timestamp()
    for name, (_, message) in by_entry.items():
        assert watched[name].task_id == message["headers"]["id"]


def test_a_batch_the_broker_refused_is_recorded_nowhere_and_sent_at_the_next_tick(driver, redis_client):
    def spoil_routed_queue(headers=None, **_):  # once its message is buffered: its LPUSH fails at the flush
        if headers[ENTRY] == "routed":
            redis_client.set(ROUTED, "not a list")
    after_task_publish.connect(spoil_routed_queue, weak=False)
    metas_before = {name: redis_client.hget(f"redbeat:{name}", "meta") for name in SCHEDULE}
    try:
        driver.tick_at(FIRE)
    finally:
        after_task_publish.disconnect(spoil_routed_queue)
    assert redis_client.zcard(delivery_watch.PENDING_KEY) == 0
    assert {name: redis_client.hget(f"redbeat:{name}", "meta") for name in SCHEDULE} == metas_before

    redis_client.delete(ROUTED, "default")  # the broker is fine again (and the copies of the failed flush gone)
    driver.tick_at(FIRE + timedelta(seconds=2))
    messages = queued(redis_client) + queued(redis_client, ROUTED)
    assert sorted(m["headers"][ENTRY] for m in messages) == sorted(SCHEDULE)
    assert {m["headers"][FIRE_AT] for m in messages} == {FIRE.isoformat()}
    assert redis_client.zcard(delivery_watch.PENDING_KEY) == len(SCHEDULE)


def test_a_batch_runs_on_a_real_worker_each_run_once(app, redis_client, monkeypatch, tmp_path, worker):
    schedule = {name: {**spec, "task": "tests.ledger.record"} for name, spec in SCHEDULE.items()
                if name != "expiring"}  # the injected clock is in the past: an expiring message would be dropped
    driver = Driver(app, monkeypatch, tmp_path, schedule, start=START)
    driver.tick_at(FIRE)
    expected = {f"{name}|{FIRE.isoformat()}": "1" for name in schedule}
    wait_until(lambda: redis_client.hgetall(ledger_tasks.LEDGER_KEY) == expected, timeout_s=60,
               what="every batched run executed once on the worker")
    watched = [delivery_watch.Dispatch.from_member(m) for m in redis_client.zrange(delivery_watch.PENDING_KEY, 0, -1)]
    assert sorted(d.entry for d in watched) == sorted(schedule)
    assert all(redis_client.hget(record_key(d.run_id), "state") == "succeeded" for d in watched)
    assert queued(redis_client) == [] and queued(redis_client, ROUTED) == []

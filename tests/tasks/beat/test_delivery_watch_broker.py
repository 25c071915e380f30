"""The broker's Redis apart from the state's (``CELERY_BROKER_URL``): the delivery watch looks for the
messages where the broker keeps them, and the monitor counts them there (real redis-server: the
broker in database 1, the state in database 0)."""
from __future__ import annotations

import json

import pytest
import redis
from kombu import Connection

from monitoring.broker_queues import BrokerQueues
from tasks.beat import delivery_watch
from tasks.guard.identity import record_key

SENT_AT = 1_000_000.0


@pytest.fixture
def broker(redis_url, redis_client):
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1", decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def a_dispatch(task_id: str) -> delivery_watch.Dispatch:
    return delivery_watch.Dispatch(entry=f"entry-{task_id}", fire_at="2026-11-02T01:00:00+00:00", task_id=task_id, queue="default",
                                   sent_at=SENT_AT)


def kombu_message(task_id: str) -> str:
    return json.dumps({"body": "", "headers": {"id": task_id, "task": "t"}, "properties": {}})


def test_a_message_waiting_in_the_brokers_redis_is_on_its_way_and_claims_are_read_from_the_state(
        redis_client, broker):
    waiting, delivered, claimed, lost = (a_dispatch(t) for t in ("in-queue", "in-unacked", "claimed", "nowhere"))
    for dispatch in (waiting, delivered, claimed, lost):
        delivery_watch.watch(redis_client, dispatch)
    broker.lpush("default", kombu_message("in-queue"))
    broker.hset("unacked", "tag", json.dumps([json.loads(kombu_message("in-unacked")), "", "default"]))
    redis_client.set(record_key(claimed.run_id), "{}")
    now = SENT_AT + delivery_watch.PICKUP_GRACE_S + 1

    assert delivery_watch.sweep(redis_client, now=now, broker=broker) == [lost]
    remaining = {delivery_watch.Dispatch.from_member(m).task_id
                 for m in redis_client.zrange(delivery_watch.PENDING_KEY, 0, -1)}
    assert remaining == {"in-queue", "in-unacked", "nowhere"}  # the claimed one forgotten
    # looked for in the state's Redis (before issue 17), the waiting and delivered ones read as lost
    assert {d.task_id for d in delivery_watch.sweep(redis_client, now=now)} == {"in-queue", "in-unacked", "nowhere"}


def test_queue_depth_is_counted_in_the_brokers_redis_through_kombu(redis_url, redis_client, broker):
    url = redis_url.rsplit("/", 1)[0] + "/1"
    with Connection(url) as connection:
        producer = connection.Producer()
        for n in range(3):
            producer.publish({"n": n}, routing_key="parked", declare=[connection.SimpleQueue("parked").queue])
    redis_client.lpush("parked", "a message in the state's Redis is no message")
    probe = BrokerQueues(lambda: Connection(url), redis_client=broker)
    assert probe.depths(["parked", "unknown"]) == {"parked": 3, "unknown": 0}
    assert "parked" in probe.declared()

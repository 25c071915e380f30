"""Dispatches the broker accepted but no worker received: found, and sent again.

kombu's Redis transport takes a message off its queue (BRPOP) before it lists it among the
unacked ones; a consumer connection that dies in between loses the message although beat's
publish succeeded. Beat therefore keeps each dispatch of a guarded task in a sorted set
(:data:`PENDING_KEY`, scored by publish time) until its run is claimed (``tasks.guard.identity``).
A sweep looks at the dispatches older than :data:`PICKUP_GRACE_S`, checking where each
message should be in the order a message moves — its queue, the broker's unacked hash, the
run's claim record — so one that moves on meanwhile is found further along. A dispatch found
nowhere was lost: beat sends it again, as the same run id, so that a copy that was not lost
after all is skipped as a duplicate. After :data:`MAX_RESENDS` it is reported instead.

The broker's Redis may be another than the state store's (``CELERY_BROKER_URL``): messages are
looked for in the broker's, claims in the state store. With RabbitMQ nothing is watched
(publisher confirms instead; ``tasks.infra.broker``).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis

from monitoring.events import EventKind, record_event
from monitoring.namespace import namespaced
from tasks.run_ids import record_key, run_id_for

logger = logging.getLogger("beatkeeper.beat")

PENDING_KEY = namespaced("beatkeeper:dispatch:pending")
PICKUP_GRACE_S = 10.0  # seconds a dispatch may take to reach a worker before it is looked for
SWEEP_S = 5.0  # seconds between sweeps
SWEEP_BATCH = 500  # dispatches looked at per sweep
MAX_RESENDS = 3
QUEUE_SCAN_MAX = 1000  # a longer queue is not searched: its dispatches may still be in it, and wait


@dataclass(frozen=True)
class Dispatch:
    """One message beat handed to the broker, as kept until its run is claimed."""

    entry: str
    fire_at: str  # ISO-8601 UTC
    task_id: str
    queue: str
    sent_at: float  # unix time of the publish
    expires_at: float | None = None  # unix time the message expires (the worker drops it after)
    resends: int = 0

    @property
    def run_id(self) -> str:
        return run_id_for(entry=self.entry, fire_at=datetime.fromisoformat(self.fire_at), task_id=self.task_id)

    def member(self) -> str:
        return json.dumps(vars(self), sort_keys=True)  # the fields are flat: asdict's deep copy is a burst's cost

    @classmethod
    def from_member(cls, member: str | bytes) -> "Dispatch":
        return cls(**json.loads(member))

    def resent(self, task_id: str, sent_at: float) -> "Dispatch":
        return replace(self, task_id=task_id, sent_at=sent_at, resends=self.resends + 1)


def watch(pipe: Any, dispatch: Dispatch) -> None:
    """Keep ``dispatch`` until its run is claimed (in the caller's pipeline, after the publish)."""
    pipe.zadd(PENDING_KEY, {dispatch.member(): dispatch.sent_at})


def sweep(client: redis.Redis, *, now: float, unacked_key: str = "unacked",
          broker: redis.Redis | None = None) -> list[Dispatch]:
    """The dispatches that were lost (to send again); claimed, expired and given-up ones are
    forgotten, the last with a ``dispatch_lost`` event. ``broker``: the broker's Redis, where queued
    and unacked messages are (default ``client``: one Redis for both; ``tasks.infra.broker``)."""
    members = client.zrangebyscore(PENDING_KEY, 0, now - PICKUP_GRACE_S, start=0, num=SWEEP_BATCH)
    if not members:
        return []
    dispatches = {member: Dispatch.from_member(member) for member in members}
    queues = sorted({d.queue for d in dispatches.values()})
    broker = client if broker is None else broker
    with broker.pipeline(transaction=False) as pipe:
        for queue in queues:  # where the message waits, then where it is delivered, then claimed
            pipe.llen(namespaced(queue))  # kombu's keys: its global_keyprefix is the namespace
            pipe.lrange(namespaced(queue), 0, QUEUE_SCAN_MAX - 1)
        pipe.hvals(namespaced(unacked_key))
        if broker is client:
            for dispatch in dispatches.values():
                pipe.exists(record_key(dispatch.run_id))
        replies = pipe.execute()
    if broker is not client:  # claims are state: asked after the broker, as in one pipeline
        with client.pipeline(transaction=False) as pipe:
            for dispatch in dispatches.values():
                pipe.exists(record_key(dispatch.run_id))
            replies += pipe.execute()
    n = len(queues)
    waiting = {queue: (length > QUEUE_SCAN_MAX, _task_ids(messages))
               for queue, length, messages in zip(queues, replies[0:2 * n:2], replies[1:2 * n:2])}
    unacked, claimed = _task_ids(replies[2 * n]), replies[2 * n + 1:]

    lost, done = [], []
    for (member, dispatch), is_claimed in zip(dispatches.items(), claimed):
        too_long, queued = waiting[dispatch.queue]
        if is_claimed or (dispatch.expires_at is not None and now >= dispatch.expires_at):
            done.append(member)
        elif too_long or dispatch.task_id in queued or dispatch.task_id in unacked:
            continue  # on its way
        elif dispatch.resends >= MAX_RESENDS:
            done.append(member)
            logger.error("beat: %s for %s never reached a worker, sent %d times; giving up", dispatch.entry,
                         dispatch.fire_at, dispatch.resends + 1)
            record_event(client, EventKind.DISPATCH_LOST, dispatch.entry, fire_at=dispatch.fire_at, run_id=dispatch.run_id,
                         sends=dispatch.resends + 1, queue=dispatch.queue)
        else:
            lost.append(dispatch)
    if done:
        client.zrem(PENDING_KEY, *done)
    return lost


#: A Celery message's task id, in the JSON kombu stores (headers ``"id"``; the body is base64).
_TASK_ID = re.compile(r'"id": "([^"]+)"')


def _task_ids(messages: list[bytes | str]) -> set[str]:
    """The task ids of stored messages (queue entries, unacked values), without decoding each."""
    text = "\n".join(m.decode("utf-8", "replace") if isinstance(m, bytes) else m for m in messages)
    return set(_TASK_ID.findall(text))

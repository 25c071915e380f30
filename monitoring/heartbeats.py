"""Heartbeats as one Redis sorted set: member = component, score = unix time (seconds).

Staleness is one ``ZRANGEBYSCORE``; ``redis-cli zrange beatkeeper:heartbeats 0 -1 withscores``
shows them all. The ``beatkeeper.heartbeat`` task writes two components per run:
``beat`` (the instant beat scheduled it: the beat -> broker leg is alive) and
``worker`` / ``worker:<hostname>`` (the instant a worker ran it: the whole path is alive).
"""
from __future__ import annotations

from dataclasses import dataclass

import redis

HEARTBEATS_KEY = "beatkeeper:heartbeats"
LAST_BEAT_KEY = "beatkeeper:heartbeat:last"  # hash: details of the latest heartbeat run


@dataclass(frozen=True)
class HeartbeatRun:
    """What one run of the heartbeat task saw."""

    executed_at: float  # unix seconds, when the worker ran it
    worker: str
    task_id: str
    scheduled_at: float | None = None  # unix seconds, the fire instant beat gave it; None when sent by hand
    entry: str = ""


def record_heartbeat(client: redis.Redis, run: HeartbeatRun) -> None:
    """Store one heartbeat run: the sorted-set scores and the details hash, in one round trip."""
    scores = {"worker": run.executed_at, f"worker:{run.worker}": run.executed_at}
    if run.scheduled_at is not None:
        scores["beat"] = run.scheduled_at
    details = {
        "executed_at": repr(run.executed_at),
        "worker": run.worker,
        "task_id": run.task_id,
        "entry": run.entry,
        "scheduled_at": "" if run.scheduled_at is None else repr(run.scheduled_at),
    }
    with client.pipeline(transaction=True) as pipe:
        pipe.zadd(HEARTBEATS_KEY, scores)
        pipe.hset(LAST_BEAT_KEY, mapping=details)
        pipe.execute()


def last_heartbeat(client: redis.Redis) -> HeartbeatRun | None:
    """The latest heartbeat run, or None if none was ever recorded."""
    raw = client.hgetall(LAST_BEAT_KEY)
    if not raw:
        return None
    return HeartbeatRun(
        executed_at=float(raw["executed_at"]),
        worker=raw["worker"],
        task_id=raw["task_id"],
        scheduled_at=float(raw["scheduled_at"]) if raw.get("scheduled_at") else None,
        entry=raw.get("entry", ""),
    )


def heartbeat_ages_s(client: redis.Redis, *, now: float) -> dict[str, float]:
    """Seconds since each component's last heartbeat."""
    return {member: now - score for member, score in client.zrange(HEARTBEATS_KEY, 0, -1, withscores=True)}


def stale_components(client: redis.Redis, *, now: float, max_age_s: float) -> list[str]:
    """Components whose last heartbeat is older than ``max_age_s``."""
    return list(client.zrangebyscore(HEARTBEATS_KEY, "-inf", f"({now - max_age_s}"))

"""Heartbeats as one Redis sorted set: member = component, score = unix time (seconds).

Staleness is one ``ZRANGEBYSCORE``; ``redis-cli zrange beatkeeper:heartbeats 0 -1 withscores``
shows them all. The ``beatkeeper.heartbeat`` task writes two components per run:
``beat`` (the instant beat scheduled it: the beat -> broker leg is alive) and
``worker`` / ``worker:<hostname>`` (the instant a worker ran it: the whole path is alive).

A paused heartbeat (its entry or its task, ``beatkeeper pause``) records nothing: while the
pause lasts its age says nothing about beat, and once it ends the age counts from the end of
the pause (:func:`beat_heartbeat`, what the monitor's rule and ``/readyz`` judge by).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from monitoring.namespace import namespaced
from monitoring.pauses import Pause, PauseSpan, PauseStore

HEARTBEATS_KEY = namespaced("beatkeeper:heartbeats")
LAST_BEAT_KEY = namespaced("beatkeeper:heartbeat:last")  # hash: details of the latest heartbeat run


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


@dataclass(frozen=True)
class BeatHeartbeat:
    """Beat's heartbeat as the monitor judges it."""

    age_s: float | None  # since the latest beat heartbeat, or since the heartbeat's pause ended if later
    worker_age_s: float | None  # since a worker last ran the heartbeat
    pause: Pause | None  # in force now on the heartbeat task, or on every entry running it

    def describe(self, limit_s: float) -> str:
        """One line: the current situation."""
        if self.pause is not None:
            return f"the heartbeat is paused ({self.pause.describe()}): its age is not judged"
        if self.age_s is None:
            return "no beat heartbeat recorded yet"
        return f"beat's heartbeat is {self.age_s:.0f} s old (limit {limit_s:.0f} s)"


def beat_heartbeat(client: redis.Redis, *, now: float, entries: Iterable[str], task: str,
                   spans: Mapping[str, list[PauseSpan]] | None = None) -> BeatHeartbeat:
    """Beat's heartbeat at ``now``, pauses of ``entries`` (the heartbeat's) and ``task`` considered."""
    entries = list(entries)
    ages = heartbeat_ages_s(client, now=now)
    spans = PauseStore(client).spans(now=now) if spans is None else spans

    def current(name: str) -> Pause | None:
        return next((s.pause for s in spans.get(name, ()) if s.pause is not None), None)

    entry_pauses = [current(e) for e in entries]
    pause = current(task) or (entry_pauses[0] if entries and all(entry_pauses) else None)
    age_s = ages.get("beat")
    ended = [s.end for name in (*entries, task) for s in spans.get(name, ()) if s.pause is None and s.end <= now]
    if ended and pause is None:
        since_pause_s = now - max(ended)
        age_s = since_pause_s if age_s is None else min(age_s, since_pause_s)
    return BeatHeartbeat(age_s=age_s, worker_age_s=ages.get("worker"), pause=pause)

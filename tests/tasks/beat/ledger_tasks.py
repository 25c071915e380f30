"""Test-only tasks that count their own executions in a ledger; subprocess workers load them
with ``BEATKEEPER_TASK_MODULES=tests.tasks.beat.ledger_tasks``.

The ledger is a Redis hash: ``entry|fire instant`` (the headers beat sent) -> how many times a
body executed for it. A body's write goes through a script that also adds the execution's own
id to a set, so a write redis-py retries after a dropped connection still counts once: the
ledger counts executions, never its own retries.
"""
from __future__ import annotations

import json
import os
import signal
import time
import uuid

import redis

from tasks import headers
from tasks.application import app
from tasks.infra.redis_client import app_redis

LEDGER_KEY = "ledger:runs"  # hash: "entry|fire_at ISO" (or "hand|task id") -> executions
EXECUTIONS_KEY = "ledger:executions"  # set: execution ids already counted
EXECUTED_AT_KEY = "ledger:executed_at"  # hash: run field -> unix seconds its first execution counted
ENTERED_KEY = "ledger:entered"  # list of JSON: one per body that started (pid, fencing token)
BLOCK_PREFIX = "ledger:block:"  # a body of ``side_effect`` waits while ``BLOCK_PREFIX + key`` exists
WRITE_DEADLINE_S = 30.0  # a body keeps trying its ledger write this long through Redis faults
BLOCK_LIMIT_S = 30.0

# KEYS[1] executions set, KEYS[2] ledger, KEYS[3] first execution instants;
# ARGV[1] execution id, ARGV[2] ledger field, ARGV[3] now (unix seconds).
_COUNT_ONCE = """
    if redis.call('sadd', KEYS[1], ARGV[1]) == 1 then
        redis.call('hsetnx', KEYS[3], ARGV[2], ARGV[3])
        return redis.call('hincrby', KEYS[2], ARGV[2], 1)
    end
    return -1
"""


def ledger_field(request) -> str:
    """The ledger field of a run: its run identity as beat sent it."""
    fire_at = headers.fire_at_of(request)
    if fire_at is None:
        return f"hand|{request.id}"
    return f"{headers.entry_of(request)}|{fire_at.isoformat()}"


def _persistently(call):
    """Run ``call`` until Redis answers: the execution already happened, its record must land."""
    deadline = time.monotonic() + WRITE_DEADLINE_S
    while True:
        try:
            return call()
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _count(field: str) -> None:
    client = app_redis(app)
    execution = uuid.uuid4().hex
    now = repr(time.time())
    _persistently(lambda: client.eval(_COUNT_ONCE, 3, EXECUTIONS_KEY, LEDGER_KEY, EXECUTED_AT_KEY, execution,
                                      field, now))


def _entered(task, key: str) -> None:
    client = app_redis(app)
    entry = {"key": key, "task_id": task.request.id, "pid": os.getpid(), "at": time.time(),
             "fence": getattr(task.request, "fencing_token", None), "field": ledger_field(task.request)}
    _persistently(lambda: client.rpush(ENTERED_KEY, json.dumps(entry)))


@app.task(name="tests.ledger.record", bind=True, ignore_result=True, overlap="allow")
def record(self, hold_s: float = 0.0) -> None:
    """Counts one execution of the instant beat sent it for, after working ``hold_s``."""
    if hold_s:
        time.sleep(hold_s)  # the workload: keeps runs in flight when a fault strikes
    _count(ledger_field(self.request))


@app.task(name="tests.ledger.side_effect", bind=True, overlap="allow", lock_ttl_s=1.0)
def side_effect(self, key: str) -> int:
    """Records that it started, waits while ``BLOCK_PREFIX + key`` exists, then counts its side effect."""
    _entered(self, key)
    client = app_redis(app)
    deadline = time.monotonic() + BLOCK_LIMIT_S
    while client.exists(BLOCK_PREFIX + key) and time.monotonic() < deadline:
        time.sleep(0.02)
    _count(ledger_field(self.request))
    return os.getpid()


@app.task(name="tests.ledger.kill_own_worker", bind=True, lock_ttl_s=1.0)
def kill_own_worker(self, key: str) -> None:
    """Records that it started, then SIGKILLs the pool process running it: every time."""
    _entered(self, key)
    os.kill(os.getpid(), signal.SIGKILL)


def ledger(client) -> dict[str, int]:
    """The ledger: run field -> executions."""
    return {_text(k): int(v) for k, v in client.hgetall(LEDGER_KEY).items()}


def executed_at(client) -> dict[str, float]:
    """Run field -> unix seconds its (first) execution was counted."""
    return {_text(k): float(v) for k, v in client.hgetall(EXECUTED_AT_KEY).items()}


def entered(client, key: str) -> list[dict]:
    """Bodies that started for ``key``, in order."""
    return [e for e in (json.loads(raw) for raw in client.lrange(ENTERED_KEY, 0, -1)) if e["key"] == key]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value

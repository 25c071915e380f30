"""Test-only tasks for the history, pause, budget and metrics tests; subprocess workers load
them with ``BEATKEEPER_TASK_MODULES=tests.tasks.history_tasks``.

Each counts its executed bodies in Redis (``hist:<key>:ran``), so a test can tell a run that
did work from one that was skipped.
"""
from __future__ import annotations

import os
import time

from tasks.application import app
from tasks.infra.redis_client import app_redis

BLOCK_LIMIT_S = 30.0  # a blocked task never outlives a test run


def ran_key(key: str) -> str:
    return f"hist:{key}:ran"


def attempts_key(key: str) -> str:
    return f"hist:{key}:attempts"


def block_key(key: str) -> str:
    return f"hist:{key}:block"


def _did_work(key: str) -> int:
    app_redis(app).incr(ran_key(key))
    return os.getpid()


@app.task(name="tests.history.ok", overlap="allow")
def ok(key: str, hold_s: float = 0.0) -> int:
    if hold_s:
        time.sleep(hold_s)  # the workload: spreads runs over several worker processes
    return _did_work(key)


@app.task(name="tests.history.fail", overlap="allow")
def fail(key: str) -> None:
    _did_work(key)
    raise ValueError(f"boom {key}")


class FlakyError(ConnectionError):
    """A transient error: declared for automatic retry below."""


@app.task(name="tests.history.flaky", bind=True, overlap="allow", autoretry_for=(FlakyError,),
          retry_backoff=1, retry_backoff_max=1, retry_jitter=True, max_retries=3)
def flaky(self, key: str, failures: int) -> int:
    """Fails ``failures`` times with a transient error, then succeeds (exponential backoff, jitter)."""
    attempt = app_redis(app).incr(attempts_key(key))
    if attempt <= failures:
        raise FlakyError(f"flaky {key} attempt {attempt}")
    return _did_work(key)


@app.task(name="tests.history.blocker", overlap="skip", lock_key=["key"])
def blocker(key: str) -> int:
    """Holds its lock while ``hist:<key>:block`` exists: a second run overlaps it."""
    client = app_redis(app)
    client.incr(f"hist:{key}:entered")
    deadline = time.monotonic() + BLOCK_LIMIT_S
    while client.exists(block_key(key)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return _did_work(key)


@app.task(name="tests.history.small_budget", overlap="allow", max_runs_per_hour=2)
def small_budget(key: str) -> int:
    return _did_work(key)


@app.task(name="tests.history.counted", overlap="allow", ignore_result=True)
def counted(key: str) -> None:
    """The cheapest guarded task: the budget tests send it by the thousand."""
    _did_work(key)

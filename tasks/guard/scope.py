"""Which runs get the full guard, and which run as a plain Celery task would.

A run is *plain* when nothing asked for a guard: it is not a schedule entry's run (no entry
header), its task is named by no schedule entry (beat publishes the set of scheduled task
names at start), and the task declares no policy (``tasks.policy.declared_fields``, or a
``max_runs_per_hour``). A web app's ``send_email`` is the typical plain task: two calls with
the same arguments both run, and past the hourly budget its runs are counted and alerted on,
never refused. Each middleware says what it does to a plain run (``Middleware.for_plain_runs``).

Entries' runs, hand-triggered runs of a scheduled task (``celery call``, ``send_task``: they
take the same lock as beat's) and tasks that declare a policy keep the full guard.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import redis

from tasks.policy import SCHEDULED_TASKS_KEY, publish_scheduled_tasks  # noqa: F401 (beat's side, tasks.policy)

DEFAULT_REFRESH_S = 5.0


class ScheduledTasks:
    """A worker's cached view of the scheduled task names, re-read every ``refresh_s``."""

    def __init__(self, client: redis.Redis, *, refresh_s: float = DEFAULT_REFRESH_S,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.refresh_s = refresh_s
        self.clock = clock
        self._names: frozenset[str] = frozenset()
        self._read_at: float | None = None

    def __contains__(self, task_name: str) -> bool:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.refresh_s:
            self._names = frozenset(n for n in self.client.smembers(SCHEDULED_TASKS_KEY))
            self._read_at = now
        return task_name in self._names


def is_plain(task: Any, *, entry: str, declared: dict[str, Any], scheduled: ScheduledTasks) -> bool:
    """Whether a run of ``task`` is plain (see the module docstring)."""
    if entry or declared or getattr(task, "max_runs_per_hour", None):
        return False
    return task.name not in scheduled


"""Pause a schedule entry or a task at call time, without restarting anything.

The pauses themselves (``beatkeeper pause``/``resume``, stored in Redis) are
``monitoring.pauses``: the monitor reads them too. Here, the worker's side: the worker checks
them before every run (one ``HMGET``), so a pause takes effect on the very next run, and a
paused run does no work: it ends as ``skipped_paused`` (recorded by history and metrics).
"""
from __future__ import annotations

import time
from typing import Callable

import redis

from monitoring.pauses import PAUSES_KEY, Pause, PauseStore, PauseUntilInPast  # noqa: F401 (their home here before)
from tasks.guard.middleware import Middleware
from monitoring.run_status import RunStatus
from tasks.guard.run import Run, Skip


class PauseMiddleware(Middleware):
    """Skips a run whose entry or task is paused (``skipped_paused``); the body never starts."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time):
        self.store = PauseStore(client)
        self.clock = clock

    def before_run(self, run: Run) -> Skip | None:
        pause = self.store.active_pause((run.entry, run.task_name), now=self.clock())
        if pause is None:
            return None
        return Skip(RunStatus.SKIPPED_PAUSED, reason=pause.describe())

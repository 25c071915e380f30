"""Long-run detection: a run past its ``max_runtime_s`` is recorded, never killed.

A timer started with the run records a ``long_run`` event the moment the run crosses its
bound, so a hung run is visible while it still hangs (the monitor alerts on the event).
Killing is a different setting: ``time_limit_s`` becomes Celery's hard time limit, enforced
by the worker's pool. A run that ends past its bound without the timer having fired (a late
timer thread) is recorded at the end instead, so none is missed.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Protocol

import redis

from monitoring.events import EventKind, record_event
from tasks.guard.middleware import Middleware
from tasks.guard.run import Outcome, Run

_TIMER = "longrun.timer"  # keys in run.state
_RECORDED = "longrun.recorded"


class Timer(Protocol):
    def start(self) -> None: ...
    def cancel(self) -> None: ...


def _daemon_timer(interval_s: float, fn: Callable[[], None]) -> Timer:
    timer = threading.Timer(interval_s, fn)
    timer.daemon = True
    return timer


class LongRunMiddleware(Middleware):
    """Records a ``long_run`` event for runs that exceed their policy's ``max_runtime_s``."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time,
                 timer_factory: Callable[[float, Callable[[], None]], Timer] = _daemon_timer):
        self.client = client
        self.clock = clock
        self.timer_factory = timer_factory

    def before_run(self, run: Run) -> None:
        if run.policy.max_runtime_s is None:
            return None
        run.state[_RECORDED] = threading.Event()
        timer = self.timer_factory(run.policy.max_runtime_s, lambda: self._record(run, still_running=True))
        run.state[_TIMER] = timer
        timer.start()
        return None

    def after_run(self, run: Run, outcome: Outcome) -> None:
        timer = run.state.pop(_TIMER, None)
        if timer is None:
            return
        timer.cancel()
        if run.started_at is not None and outcome.finished_at - run.started_at > run.policy.max_runtime_s:
            self._record(run, still_running=False, finished_at=outcome.finished_at,
                         status=outcome.status.value)

    def _record(self, run: Run, *, still_running: bool, **extra: Any) -> None:
        recorded: threading.Event = run.state[_RECORDED]
        if recorded.is_set():
            return
        recorded.set()
        now = self.clock()
        started_at = run.started_at if run.started_at is not None else run.received_at
        end = extra.get("finished_at", now)
        record_event(self.client, EventKind.LONG_RUN, run.entry or run.task_name, at=now, task_id=run.task_id,
                     task=run.task_name, max_runtime_s=run.policy.max_runtime_s, started_at=started_at,
                     elapsed_s=round(end - started_at, 3), still_running=still_running, **extra)

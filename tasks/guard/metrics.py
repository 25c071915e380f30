"""Counts every run in Redis for Prometheus (``monitoring.metrics`` explains why Redis).

Outer middleware: skips are counted too. Its writes join the end-of-run pipeline the history
middleware sends (one round trip for both), or go as their own pipeline when history is not
installed. A Redis error is logged, never raised (a run must not fail on its metrics).
"""
from __future__ import annotations

import logging
import time

import redis

from monitoring.metrics import RunMetrics
from tasks.guard.history import AFTER_RUN_PIPELINE, lateness_s
from tasks.guard.middleware import Middleware
from monitoring.run_status import RunStatus
from tasks.guard.run import LostRun, Outcome, Run

log = logging.getLogger(__name__)


class MetricsMiddleware(Middleware):
    """Records each run's status, duration and lateness; expired runs included."""

    def __init__(self, client: redis.Redis):
        self.metrics = RunMetrics(client)

    def after_run(self, run: Run, outcome: Outcome) -> None:
        duration_s = None
        if run.started_at is not None and outcome.status in (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.RETRY):
            duration_s = outcome.finished_at - run.started_at
        self._record(run, outcome.status, finished_at=outcome.finished_at, duration_s=duration_s,
                     lateness_s=lateness_s(run), pipeline=run.state.get(AFTER_RUN_PIPELINE))

    def on_expired(self, run: Run) -> None:
        self._record(run, RunStatus.EXPIRED, finished_at=time.time())

    def on_run_lost(self, lost: LostRun) -> None:
        try:
            self.metrics.record_run(entry=lost.entry, task=lost.task_name, status=RunStatus.LOST.value,
                                    finished_at=lost.detected_at)
        except redis.RedisError as exc:
            log.warning("metrics: could not count lost run %s: %r", lost.task_id, exc)

    def _record(self, run: Run, status: RunStatus, *, finished_at: float, duration_s: float | None = None,
                lateness_s: float | None = None, pipeline=None) -> None:
        try:
            self.metrics.record_run(entry=run.entry, task=run.task_name, status=status.value,
                                    finished_at=finished_at, duration_s=duration_s, lateness_s=lateness_s,
                                    pipeline=pipeline)
        except redis.RedisError as exc:
            log.warning("metrics: could not count %s[%s]: %r", run.task_name, run.task_id, exc)

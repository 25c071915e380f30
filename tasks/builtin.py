"""Every task the platform itself registers: the heartbeat, the history retention, and the
automatic resume of stalled pipeline runs.

Their schedule entries (``beatkeeper-heartbeat``, ``beatkeeper-purge-history``,
``beatkeeper-pipeline-resume-stalled``: every 5 minutes while a pipeline is configured) are in
``schedules.platform``.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from monitoring.db import history_days
from monitoring.heartbeats import HeartbeatRun, record_heartbeat
from monitoring.history import HistoryStore
from tasks import headers
from tasks.application import app
from tasks.infra.redis_client import app_redis
from tasks.pipelines.steps import DEFAULT_MAX_AUTO_RESUMES, resume_stalled_pipelines

log = logging.getLogger(__name__)

PURGE_BATCH_SIZE = 1000


@app.task(name="beatkeeper.heartbeat", bind=True, ignore_result=True)
def heartbeat(self) -> dict:
    """Prove the beat -> broker -> worker path is alive: record when beat scheduled it and when it ran."""
    fire_at = headers.fire_at_of(self.request)
    run = HeartbeatRun(
        executed_at=time.time(),
        worker=self.request.hostname or "unknown",
        task_id=self.request.id or "",
        scheduled_at=fire_at.timestamp() if fire_at else None,
        entry=headers.entry_of(self.request),
    )
    record_heartbeat(app_redis(self.app), run)
    return {"executed_at": run.executed_at, "scheduled_at": run.scheduled_at}


def purge_older_than(store: HistoryStore, *, now: datetime, days: int, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete rows that finished more than ``days`` days before ``now``; returns how many."""
    return store.purge(older_than=now - timedelta(days=days), batch_size=batch_size)


@app.task(name="beatkeeper.purge_history", bind=True, ignore_result=True, overlap="skip", lock_key=[],
          lock_ttl_s=600)
def purge_history(self, days: int | None = None, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Apply the retention (``BEATKEEPER_HISTORY_DAYS``, default 30 days) to the execution history."""
    days = days or history_days()
    started = time.monotonic()
    deleted = purge_older_than(self.app.beatkeeper.history, now=datetime.now(timezone.utc), days=days,
                               batch_size=batch_size)
    log.info("history: purged %d row(s) older than %d day(s) in %.1f s", deleted, days, time.monotonic() - started)
    return deleted


@app.task(name="beatkeeper.pipeline.resume_stalled", bind=True, overlap="skip", lock_key=[])
def resume_stalled(self, max_resumes: int = DEFAULT_MAX_AUTO_RESUMES) -> list[str]:
    """Resume pipeline runs stalled past their step's ``max_runtime_s``; returns their run ids."""
    return [r.run_id for r in resume_stalled_pipelines(self.app, now=time.time(), max_resumes=max_resumes)]

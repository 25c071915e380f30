"""The platform's housekeeping tasks: history retention.

Its schedule entry, ``beatkeeper-purge-history``, is in ``schedules.platform``.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from monitoring.db import history_days
from monitoring.history import HistoryStore
from tasks.application import app
from tasks.history_mw import history_store_for

log = logging.getLogger(__name__)

PURGE_BATCH_SIZE = 1000



def purge_older_than(store: HistoryStore, *, now: datetime, days: int, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete rows that finished more than ``days`` days before ``now``; returns how many."""
    return store.purge(older_than=now - timedelta(days=days), batch_size=batch_size)


@app.task(name="beatkeeper.purge_history", bind=True, ignore_result=True, overlap="skip", lock_key=[],
          lock_ttl_s=600)
def purge_history(self, days: int | None = None, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Apply the retention (``BEATKEEPER_HISTORY_DAYS``, default 30 days) to the execution history."""
    days = days or history_days()
    started = time.monotonic()
    deleted = purge_older_than(history_store_for(self.app), now=datetime.now(timezone.utc), days=days,
                               batch_size=batch_size)
    log.info("history: purged %d row(s) older than %d day(s) in %.1f s", deleted, days, time.monotonic() - started)
    return deleted

"""The transit example's tasks (shared/seeds/004_...): the GTFS static pipeline
(``examples.transit.gtfs_tasks``) and the brief's hourly and realtime jobs.

Each job takes its "now" from the instant beat scheduled it (``tasks.headers``), so a late or
caught-up run works on the hour it was meant for; a run by hand uses the clock.
"""
from __future__ import annotations

import logging
import os
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select

from examples.transit import gtfs_tasks  # noqa: F401  (registers the pipeline's tasks)
from examples.transit.adaptive import poll_mode, poll_due
from examples.transit.tables import cost_checks, database_url, engine_for, rt_polls, usage_hourly
from monitoring.db import data_dir
from tasks import headers
from tasks.application import app

log = logging.getLogger(__name__)
SYDNEY = ZoneInfo("Australia/Sydney")
EXPORT_KEEP_DAYS = 7


def _as_of(request) -> datetime:
    return headers.fire_at_of(request) or datetime.now(timezone.utc)


@app.task(name="transit.rt_poll", bind=True)
def rt_poll(self) -> str:
    """Poll GTFS-RT unless the adaptive logic says this slot is not needed (off-peak)."""
    now = _as_of(self.request)
    engine = engine_for(database_url())
    with engine.begin() as conn:
        last = conn.execute(select(func.max(rt_polls.c.polled_at))).scalar()
        since_s = None if last is None else (now - last.replace(tzinfo=last.tzinfo or timezone.utc)).total_seconds()
        mode = poll_mode(now.astimezone(SYDNEY).hour)
        if not poll_due(mode, since_s):
            return f"skipped ({mode}, last poll {since_s:.0f} s ago)"
        url = os.environ.get("GTFS_RT_URL", "").strip()
        if url:
            with urllib.request.urlopen(url, timeout=10) as response:  # the realtime feed, protobuf
                response.read()
        conn.execute(insert(rt_polls).values(polled_at=now, mode=mode))
    return f"polled ({mode})"


@app.task(name="transit.match_alerts", bind=True)
def match_alerts(self) -> int:
    """Match delays to users' favourites (the app's own logic; here: the polls it would read)."""
    now = _as_of(self.request)
    with engine_for(database_url()).connect() as conn:
        return conn.execute(select(func.count()).select_from(rt_polls)
                            .where(rt_polls.c.polled_at >= now - timedelta(minutes=5))).scalar_one()


@app.task(name="transit.usage_rollup", bind=True)
def usage_rollup(self) -> int:
    """Roll the previous hour's polls up into ``transit_usage_hourly`` (idempotent: upsert by hour)."""
    now = _as_of(self.request)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    with engine_for(database_url()).begin() as conn:
        polls = conn.execute(select(func.count()).select_from(rt_polls).where(
            rt_polls.c.polled_at >= hour, rt_polls.c.polled_at < hour + timedelta(hours=1))).scalar_one()
        conn.execute(delete(usage_hourly).where(usage_hourly.c.hour == hour))
        conn.execute(insert(usage_hourly).values(hour=hour, polls=polls))
    return polls


@app.task(name="transit.cost_check", bind=True)
def cost_check(self) -> float:
    """Project the month's cost from the last hour's polls; warn past ``TRANSIT_BUDGET_USD`` (25)."""
    now = _as_of(self.request)
    budget = float(os.environ.get("TRANSIT_BUDGET_USD") or 25)
    per_worker_hour = float(os.environ.get("TRANSIT_COST_PER_WORKER_HOUR") or 0.05)
    with engine_for(database_url()).begin() as conn:
        polls = conn.execute(select(func.count()).select_from(rt_polls)
                             .where(rt_polls.c.polled_at >= now - timedelta(hours=1))).scalar_one()
        projected = polls * 24 * 30 * 2 / 3600 * per_worker_hour  # 2 s per poll, as in schedule.yaml
        conn.execute(insert(cost_checks).values(checked_at=now, projected_usd_per_month=projected,
                                                budget_usd_per_month=budget))
    if projected > budget:
        log.warning("transit cost check: projected %.2f USD/month is over the budget of %.2f", projected, budget)
    return projected


@app.task(name="transit.storage_cleanup", bind=True)
def storage_cleanup(self) -> list[str]:
    """Delete GTFS export files older than a week (the published copy is the one served)."""
    cutoff = time.time() - EXPORT_KEEP_DAYS * 86400
    folder = Path(data_dir()).resolve() / "gtfs" / "export"
    removed = [p for p in folder.glob("*") if p.is_file() and p.stat().st_mtime < cutoff] if folder.is_dir() else []
    for path in removed:
        path.unlink(missing_ok=True)
    return [p.name for p in removed]

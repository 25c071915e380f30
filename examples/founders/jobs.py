"""The Founders pricing-lock sweep as a beatkeeper task (seeds 000 and 001).

* Registration: the entry ``founders-promo`` (schedule.yaml, 01:00 UTC nightly) is left out
  when ``FOUNDERS_PROMO_SCHEDULER_DISABLED=1`` (beatkeeper's kill switch, schedules/killswitch.py).
* Call time: ``FLAG_FOUNDERS_PROMO`` off (``0``, ``false``, ``off``, ``no``) makes each run exit at
  once, recorded as ``flag_off``; unset means on.
* Multi-worker double-fire: the Postgres advisory lock (tasks/locks/advisory.py; Redis on SQLite).
* The day swept is the scheduled instant's UTC date (a late run sweeps its own night), or
  ``as_of`` given by hand, or today.
"""
from __future__ import annotations

import os
from datetime import date, datetime, timezone

from sqlalchemy import insert

from examples.founders.sweep import sweep
from examples.founders.tables import database_url, engine_for, sweep_runs
from tasks import headers
from tasks.application import app
from tasks.locks.advisory import database_lock
from tasks.infra.redis_client import app_redis

TASK = "founders.pricing_lock_sweep"
LOCK_NAME = "founders_pricing_lock_sweep"
FLAG = "FLAG_FOUNDERS_PROMO"
OFF = frozenset({"0", "false", "off", "no"})


def _as_of(request, as_of: str | None) -> date:
    if as_of:
        return date.fromisoformat(as_of)
    fire_at = headers.fire_at_of(request)
    return (fire_at or datetime.now(timezone.utc)).astimezone(timezone.utc).date()


@app.task(name=TASK, bind=True)
def pricing_lock_sweep(self, as_of: str | None = None) -> dict:
    day = _as_of(self.request, as_of)
    engine = engine_for(database_url())
    if (os.environ.get(FLAG) or "on").strip().lower() in OFF:
        return _record(engine, day, "flag_off")
    with database_lock(engine, LOCK_NAME, redis_client=app_redis(self.app), ttl_s=600) as lease:
        if not lease:
            return _record(engine, day, "locked")
        result = sweep(engine, day)
    return _record(engine, day, "swept", result.warnings_sent, result.transitions)


def _record(engine, day: date, outcome: str, warnings_sent: int = 0, transitions: int = 0) -> dict:
    with engine.begin() as conn:
        conn.execute(insert(sweep_runs).values(as_of=day, recorded_at=datetime.now(timezone.utc), outcome=outcome,
                                               warnings_sent=warnings_sent, transitions=transitions))
    return {"as_of": day.isoformat(), "outcome": outcome, "warnings_sent": warnings_sent, "transitions": transitions}

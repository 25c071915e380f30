"""The booking sweeps as beatkeeper tasks (seed 002): ``expire_requests`` every 5 minutes,
``start_sessions`` and ``end_sessions`` every minute (schedule.yaml, ``overlap: skip``: at most
one instance of each, as APScheduler's ``max_instances=1``). "Now" is the scheduled instant
(a late run works on its own minute), ``now`` given by hand, or the clock.
"""
from __future__ import annotations

from datetime import datetime, timezone

from examples.booking.tables import database_url, engine_for
from examples.booking.transitions import run_sweep
from tasks import headers
from tasks.application import app


def _now(request, now: str | None) -> datetime:
    if now:
        return datetime.fromisoformat(now)
    return headers.fire_at_of(request) or datetime.now(timezone.utc)


@app.task(name="booking.expire_requests", bind=True)
def expire_requests(self, now: str | None = None) -> int:
    """REQUESTED -> EXPIRED once requested 24 h ago."""
    return run_sweep(engine_for(database_url()), "expire_requests", _now(self.request, now))


@app.task(name="booking.start_sessions", bind=True)
def start_sessions(self, now: str | None = None) -> int:
    """SCHEDULED -> ACTIVE at the start time."""
    return run_sweep(engine_for(database_url()), "start_sessions", _now(self.request, now))


@app.task(name="booking.end_sessions", bind=True)
def end_sessions(self, now: str | None = None) -> int:
    """ACTIVE -> ENDED at the end time plus the grace period (5 min)."""
    return run_sweep(engine_for(database_url()), "end_sessions", _now(self.request, now))

"""The gift exchange's background jobs as beatkeeper tasks (seed 003).

Recurring ones in schedule.yaml; the reminders are dynamic one-off entries the application puts
when an exchange is matched (scheduling.py). "Now" for a job is the scheduled instant (a late run
works on its own instant), ``now`` given by hand (ISO 8601), or the clock.
"""
from __future__ import annotations

from datetime import datetime, timezone

from examples.gift_exchange import lifecycle
from examples.gift_exchange.mailer import Mailer
from examples.gift_exchange.reminders import send_reminders
from examples.gift_exchange.tables import database_url, engine_for
from tasks import headers
from tasks.application import app

SEND_REMINDER = "gift_exchange.send_reminder"
#: runs/hour of the reminders' task. Its budget is spent by each pending reminder (a one-off
#: counts 1 run/hour) and reminders of many exchanges coincide at 09:00 local: sized for 10,000
#: matched exchanges at 3 reminders each.
REMINDER_BUDGET = 30_000


def _now(request, now: str | None) -> datetime:
    if now:
        return datetime.fromisoformat(now)
    return headers.fire_at_of(request) or datetime.now(timezone.utc)


@app.task(name=SEND_REMINDER, bind=True, max_runs_per_hour=REMINDER_BUDGET)
def send_reminder(self, exchange_id: int, days_before: int) -> dict:
    """The reminder ``days_before`` days before exchange ``exchange_id``, to its opted-in participants."""
    fire_at = headers.fire_at_of(self.request)
    return send_reminders(engine_for(database_url()), Mailer.from_env(), exchange_id, days_before,
                          fire_at=fire_at, now=fire_at or datetime.now(timezone.utc)).as_dict()


@app.task(name="gift_exchange.auto_complete", bind=True)
def auto_complete(self, now: str | None = None) -> int:
    """Matched exchanges whose moment has passed become completed."""
    return lifecycle.auto_complete(engine_for(database_url()), _now(self.request, now))


@app.task(name="gift_exchange.purge", bind=True)
def purge(self, now: str | None = None) -> dict:
    """The admin warned 7 days ahead, then completed exchanges deleted 30 days after completion."""
    result = lifecycle.purge(engine_for(database_url()), Mailer.from_env, _now(self.request, now))
    return {"warned": result.warned, "purged": result.purged}


@app.task(name="gift_exchange.cleanup_tokens", bind=True)
def cleanup_tokens(self, now: str | None = None) -> int:
    return lifecycle.cleanup_tokens(engine_for(database_url()), _now(self.request, now))


@app.task(name="gift_exchange.cleanup_sessions", bind=True)
def cleanup_sessions(self, now: str | None = None) -> int:
    return lifecycle.cleanup_sessions(engine_for(database_url()), _now(self.request, now))


@app.task(name="gift_exchange.cleanup_rate_limits", bind=True)
def cleanup_rate_limits(self, now: str | None = None) -> int:
    return lifecycle.cleanup_rate_limits(engine_for(database_url()), _now(self.request, now))

"""The pricing-lock sweep (seeds 000 and 001), as of one day.

Warnings 30, 14, 7 and 1 days before ``lock_expires_on``; on that day the row enters
``grace``, ``GRACE_DAYS`` later ``lapsed``. Idempotent and self-correcting: a warning is a row
keyed by (subscription, lead time), inserted once whatever the number of sweeps; a sweep after
missed nights sends the warnings that fell due meanwhile (while the lock has not expired) and
dates each transition on the day it became true. One transaction per subscription.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from examples.founders.tables import subscriptions, warnings

log = logging.getLogger(__name__)
WARNING_DAYS = (30, 14, 7, 1)
GRACE_DAYS = 7


@dataclass
class SweepResult:
    warnings_sent: int = 0
    transitions: int = 0


def due_status(expires_on: date, as_of: date) -> tuple[str, date | None]:
    """The status a row should have on ``as_of`` and the day it became so."""
    if as_of >= expires_on + timedelta(days=GRACE_DAYS):
        return "lapsed", expires_on + timedelta(days=GRACE_DAYS)
    if as_of >= expires_on:
        return "grace", expires_on
    return "active", None


def sweep(engine: Engine, as_of: date) -> SweepResult:
    """Bring every non-lapsed subscription to its state on ``as_of``."""
    result = SweepResult()
    with engine.connect() as conn:
        ids = conn.execute(select(subscriptions.c.id).where(subscriptions.c.status != "lapsed")
                           .order_by(subscriptions.c.id)).scalars().all()
    for sub_id in ids:
        with engine.begin() as conn:  # one transaction per row
            row = conn.execute(select(subscriptions).where(subscriptions.c.id == sub_id)).one()
            result.warnings_sent += _send_due_warnings(conn, row, as_of)
            status, since = due_status(row.lock_expires_on, as_of)
            if status != row.status:
                conn.execute(update(subscriptions).where(subscriptions.c.id == sub_id)
                             .values(status=status, status_since=since))
                result.transitions += 1
    return result


def _send_due_warnings(conn, row, as_of: date) -> int:
    if as_of >= row.lock_expires_on:
        return 0  # the lock has expired: grace says the rest
    sent = set(conn.execute(select(warnings.c.days_before).where(warnings.c.subscription_id == row.id)).scalars())
    count = 0
    for days in WARNING_DAYS:
        due_on = row.lock_expires_on - timedelta(days=days)
        if as_of >= due_on and days not in sent:
            conn.execute(insert(warnings).values(subscription_id=row.id, days_before=days, due_on=due_on,
                                                 sent_on=as_of))
            log.info("founders: warning %d days before %s to %s", days, row.lock_expires_on, row.email)
            count += 1
    return count

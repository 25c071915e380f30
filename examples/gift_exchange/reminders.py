"""Reminder e-mails N days before an exchange, at 09:00 in the exchange's own timezone.

The instant of a reminder is a local wall time (``REMINDER_TIME`` on the exchange's local date
minus N days) resolved in the exchange's zone by beatkeeper's one-off rule (schedules/oneoff.py:
a wall time in a DST gap fires just after it, a repeated one at its first occurrence). So the
1-day reminder of an exchange the day after a DST change is still at 09:00 local, not 23 h or
25 h before the exchange.

Sending is idempotent: each (participant, lead time, exchange date) is a ``gift_reminder_sent``
row inserted in the transaction that sends its e-mail; a redelivered or retried run sends only
what is missing, and a failed send rolls its row back.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import and_, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from examples.gift_exchange.mailer import Mailer
from examples.gift_exchange.tables import as_utc, exchanges, participants, reminders_sent
from schedules.oneoff import AtTrigger
from schedules.zones import zone

log = logging.getLogger(__name__)
REMINDER_TIME = time(9, 0)  # local wall time of every reminder, in the exchange's zone
REMINDER_HEADER = "X-Gift-Reminder-At"  # the reminder's scheduled instant (UTC, ISO), on each e-mail


def reminder_days_of(text: str) -> list[int]:
    """``"7,3,1"`` -> ``[7, 3, 1]`` (distinct, largest first)."""
    return sorted({int(part) for part in text.split(",") if part.strip()}, reverse=True)


def reminder_wall_time(exchange_at: datetime, zone_name: str, days_before: int) -> datetime:
    """The naive local wall time of the reminder ``days_before`` days before ``exchange_at``."""
    local_day = exchange_at.astimezone(zone(zone_name)).date() - timedelta(days=days_before)
    return datetime.combine(local_day, REMINDER_TIME)


def reminder_instant(exchange_at: datetime, zone_name: str, days_before: int) -> datetime:
    """The UTC instant of that reminder."""
    return AtTrigger.from_local(reminder_wall_time(exchange_at, zone_name, days_before), timezone=zone_name).at


@dataclass
class ReminderResult:
    exchange_id: int
    days_before: int
    outcome: str  # sent, not_matched, stale
    sent: int = 0

    def as_dict(self) -> dict:
        return {"exchange_id": self.exchange_id, "days_before": self.days_before, "outcome": self.outcome,
                "sent": self.sent}


def send_reminders(engine: Engine, mailer: Mailer, exchange_id: int, days_before: int, *,
                   fire_at: datetime | None, now: datetime) -> ReminderResult:
    """E-mail every opted-in, not withdrawn participant the reminder ``days_before`` days ahead.

    ``fire_at`` is the instant the run was scheduled for (None by hand): a run whose instant is
    no longer the reminder's (the exchange changed after it was queued) is ``stale`` and sends nothing."""
    with engine.connect() as conn:
        exchange = conn.execute(select(exchanges).where(exchanges.c.id == exchange_id)).first()
        if exchange is None or exchange.state != "matched":
            log.warning("gift: reminder for exchange %s skipped: not matched", exchange_id)
            return ReminderResult(exchange_id, days_before, "not_matched")
        exchange_at = as_utc(exchange.exchange_at)
        due_at = reminder_instant(exchange_at, exchange.timezone, days_before)
        if fire_at is not None and (fire_at != due_at or days_before not in reminder_days_of(exchange.reminder_days)):
            log.warning("gift: reminder for exchange %s at %s is stale", exchange_id, fire_at.isoformat())
            return ReminderResult(exchange_id, days_before, "stale")
        people = conn.execute(select(participants).where(and_(
            participants.c.exchange_id == exchange_id, participants.c.reminder_enabled.is_(True),
            participants.c.withdrawn_at.is_(None))).order_by(participants.c.id)).all()
    result = ReminderResult(exchange_id, days_before, "sent")
    local = exchange_at.astimezone(zone(exchange.timezone))
    for person in people:
        try:
            with engine.begin() as conn:  # the row and its e-mail together: a failed send leaves no row
                conn.execute(insert(reminders_sent).values(participant_id=person.id, days_before=days_before,
                                                           exchange_at=exchange_at, sent_at=as_utc(now)))
                mailer.send(person.email, f"{exchange.name}: {_in_days(days_before)}",
                            f"Hello {person.name},\n\n{exchange.name} takes place {local:%A %d %B %Y at %H:%M} "
                            f"({exchange.timezone}). Don't forget your gift!\n",
                            headers={REMINDER_HEADER: due_at.isoformat()})
        except IntegrityError:
            continue  # sent already: by an earlier attempt of this run, or a concurrent one
        result.sent += 1
    log.info("gift: %d-day reminder for exchange %s: %d sent", days_before, exchange_id, result.sent)
    return result


def _in_days(days: int) -> str:
    return "tomorrow" if days == 1 else f"in {days} days"

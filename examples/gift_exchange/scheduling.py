"""The application's side of the reminders: what the gift-exchange service calls when an exchange
is matched, its preferences change, or it is cancelled (the design's ``schedule_reminder_emails``
and ``update_reminder_preferences``, with beatkeeper's dynamic entries for APScheduler's jobs).

Each reminder is a one-off ``at`` entry named ``gift:reminder:<exchange id>:<days>d`` at 09:00 local
time in the exchange's zone (reminders.py), removed by beatkeeper once dispatched. A change puts the
new entries (same name: replaced, its old instant never fires) and removes the ones no longer
wanted; a refusal (``EntryRefused``, check's line) puts the old ones back and leaves the row as it
was. Reminders whose instant has passed are not scheduled (as in the design).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from examples.gift_exchange.jobs import SEND_REMINDER
from examples.gift_exchange.reminders import reminder_days_of, reminder_instant, reminder_wall_time
from examples.gift_exchange.tables import as_utc, exchanges
from tasks.dynamic.entries import DynamicEntries, EntryRefused

ENTRY_PREFIX = "gift:reminder:"
#: Each reminder's policy: the design's tenacity retry (3 tries, 4 s doubling to 60 s) on send
#: failures (smtplib's errors and refused connections are OSErrors), and its 1 h misfire grace.
REMINDER_POLICY = {"retry": {"max_retries": 3, "backoff": "4s", "backoff_max": "60s", "on": ["OSError"]},
                   "catchup": "latest", "catchup_window": "1h", "expires": "1h"}


def exchange_prefix(exchange_id: int) -> str:
    return f"{ENTRY_PREFIX}{exchange_id}:"


def reminder_entries(exchange_id: int, exchange_at: datetime, zone_name: str, days: list[int], *,
                     now: datetime) -> dict[str, dict]:
    """The dynamic entries of an exchange's reminders still ahead of ``now``, by name."""
    entries = {}
    for days_before in days:
        if reminder_instant(exchange_at, zone_name, days_before) <= now:
            continue
        entries[f"{exchange_prefix(exchange_id)}{days_before}d"] = {
            "task": SEND_REMINDER,
            "at": reminder_wall_time(exchange_at, zone_name, days_before).isoformat(),
            "timezone": zone_name,
            "kwargs": {"exchange_id": exchange_id, "days_before": days_before},
            "description": f"{days_before}-day reminder of gift exchange {exchange_id}",
            **REMINDER_POLICY,
        }
    return entries


def match_exchange(engine: Engine, entries: DynamicEntries, exchange_id: int, *, now: datetime | None = None
                   ) -> list[str]:
    """The exchange is matched: its reminders are scheduled. Returns their entry names."""
    return _change(engine, entries, exchange_id, {"state": "matched"}, now)


def update_preferences(engine: Engine, entries: DynamicEntries, exchange_id: int, *,
                       exchange_at: datetime | None = None, zone_name: str | None = None,
                       reminder_days: list[int] | None = None, now: datetime | None = None) -> list[str]:
    """New date, zone or lead times: the reminders are replaced. Returns their entry names."""
    values: dict[str, object] = {}
    if exchange_at is not None:
        values["exchange_at"] = as_utc(exchange_at)
    if zone_name is not None:
        values["timezone"] = zone_name
    if reminder_days is not None:
        values["reminder_days"] = ",".join(str(d) for d in sorted(set(reminder_days), reverse=True))
    return _change(engine, entries, exchange_id, values, now)


def cancel_exchange(engine: Engine, entries: DynamicEntries, exchange_id: int) -> int:
    """The exchange is cancelled: none of its reminders will fire. Returns how many were removed."""
    with engine.begin() as conn:
        conn.execute(update(exchanges).where(exchanges.c.id == exchange_id).values(state="cancelled"))
        return entries.remove_prefix(exchange_prefix(exchange_id))


def _change(engine: Engine, entries: DynamicEntries, exchange_id: int, values: Mapping[str, object],
            now: datetime | None) -> list[str]:
    now = as_utc(now or datetime.now(timezone.utc))
    with engine.begin() as conn:  # a refused entry rolls the row back
        old = _wanted(conn, exchange_id, now)
        conn.execute(update(exchanges).where(exchanges.c.id == exchange_id).values(**values))
        new = _wanted(conn, exchange_id, now)
        try:
            _replace(entries, exchange_prefix(exchange_id), new)
        except EntryRefused:
            _replace(entries, exchange_prefix(exchange_id), old)
            raise
    return sorted(new)


def _wanted(conn: Connection, exchange_id: int, now: datetime) -> dict[str, dict]:
    row = conn.execute(select(exchanges).where(exchanges.c.id == exchange_id)).one()
    if row.state != "matched":
        return {}
    return reminder_entries(exchange_id, as_utc(row.exchange_at), row.timezone, reminder_days_of(row.reminder_days),
                            now=now)


def _replace(entries: DynamicEntries, prefix: str, wanted: Mapping[str, dict]) -> None:
    for name, spec in wanted.items():
        entries.put(name, spec)
    for name in entries.names(prefix):
        if name not in wanted:
            entries.remove(name)

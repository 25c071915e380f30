"""What the recurring jobs do, as of an instant ``now`` (the scheduled one, so a late run works on
its own instant): auto-completion, the purge and its warning, and the three cleanups.

The purge keeps the design's promise literally: the admin is warned once, 23 days after
completion, and the exchange is deleted 30 days after completion but never less than 7 days
after that warning (a purge that missed nights warns first and deletes a week later).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.engine import Engine

from examples.gift_exchange.mailer import Mailer
from examples.gift_exchange.tables import (as_utc, exchanges, magic_tokens, participants, rate_limits,
                                           reminders_sent, sessions)

log = logging.getLogger(__name__)
RETENTION = timedelta(days=30)  # completed exchanges are deleted this long after completion
WARNING_LEAD = timedelta(days=7)  # ... and the admin warned this long before
USED_TOKEN_KEPT = timedelta(hours=24)  # a used magic token is kept this long after use


def auto_complete(engine: Engine, now: datetime) -> int:
    """Matched exchanges whose moment has passed become ``completed`` at ``now``; how many."""
    now = as_utc(now)
    with engine.begin() as conn:
        count = conn.execute(update(exchanges).where(and_(exchanges.c.state == "matched",
                                                          exchanges.c.exchange_at <= now))
                             .values(state="completed", completed_at=now)).rowcount
    log.info("gift: auto-complete: %d exchanges completed", count)
    return count


@dataclass
class PurgeResult:
    warned: int = 0
    purged: int = 0


def purge(engine: Engine, mailer_factory, now: datetime) -> PurgeResult:
    """Warn the admins of exchanges 7 days from deletion (once each), delete those due.

    ``mailer_factory`` is called only when there is a warning to send."""
    now = as_utc(now)
    result = PurgeResult()
    completed = exchanges.c.state == "completed"
    with engine.connect() as conn:
        to_warn = conn.execute(select(exchanges.c.id).where(and_(
            completed, exchanges.c.purge_warned_at.is_(None),
            exchanges.c.completed_at <= now - (RETENTION - WARNING_LEAD)))).scalars().all()
        to_purge = conn.execute(select(exchanges.c.id).where(and_(
            completed, exchanges.c.completed_at <= now - RETENTION,
            exchanges.c.purge_warned_at <= now - WARNING_LEAD))).scalars().all()
    for exchange_id in to_warn:
        with engine.begin() as conn:  # marked and mailed together: a failed send is retried next night
            marked = conn.execute(update(exchanges).where(and_(exchanges.c.id == exchange_id,
                                                               exchanges.c.purge_warned_at.is_(None)))
                                  .values(purge_warned_at=now)).rowcount
            if marked:
                row = conn.execute(select(exchanges).where(exchanges.c.id == exchange_id)).one()
                deleted_on = max(as_utc(row.completed_at) + RETENTION, now + WARNING_LEAD)
                mailer_factory().send(
                    row.admin_email, f"{row.name}: its data will be deleted on {deleted_on:%d %B %Y}",
                    f"The exchange {row.name} completed on {as_utc(row.completed_at):%d %B %Y}. Its participants "
                    f"and reminders will be deleted on or after {deleted_on:%d %B %Y %H:%M} UTC.\n")
                result.warned += marked
    for exchange_id in to_purge:
        with engine.begin() as conn:  # the exchange and everything under it, or nothing
            people = select(participants.c.id).where(participants.c.exchange_id == exchange_id)
            conn.execute(delete(reminders_sent).where(reminders_sent.c.participant_id.in_(people)))
            conn.execute(delete(participants).where(participants.c.exchange_id == exchange_id))
            result.purged += conn.execute(delete(exchanges).where(exchanges.c.id == exchange_id)).rowcount
    log.info("gift: purge: %d warned, %d purged", result.warned, result.purged)
    return result


def cleanup_tokens(engine: Engine, now: datetime) -> int:
    """Delete expired magic tokens, and used ones a day after use."""
    now = as_utc(now)
    with engine.begin() as conn:
        return conn.execute(delete(magic_tokens).where(or_(
            magic_tokens.c.expires_at <= now, magic_tokens.c.used_at <= now - USED_TOKEN_KEPT))).rowcount


def cleanup_sessions(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(delete(sessions).where(sessions.c.expires_at <= as_utc(now))).rowcount


def cleanup_rate_limits(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(delete(rate_limits).where(rate_limits.c.expires_at <= as_utc(now))).rowcount

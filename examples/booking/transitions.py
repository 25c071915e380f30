"""Booking state transitions (seed 002): the three sweeps and the API's own changes.

A sweep lists the due rows, then claims each in its own transaction (``SELECT ... FOR UPDATE
SKIP LOCKED`` on Postgres: a row another sweep or an API request holds is skipped, not waited
for, and retried on the next interval), changes it and logs the change, then commits.
Transitions are idempotent: a row already past its source state is simply not claimed.
On SQLite (one writer at a time) the same statements run without the row lock.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection, Engine

from examples.booking.tables import bookings, transitions

REQUEST_TTL = timedelta(hours=24)
END_GRACE = timedelta(minutes=5)

#: name -> (from status, to status, the "due" condition at ``now``)
SWEEPS: dict[str, tuple[str, str, Callable[[datetime], object]]] = {
    "expire_requests": ("REQUESTED", "EXPIRED", lambda now: bookings.c.requested_at <= now - REQUEST_TTL),
    "start_sessions": ("SCHEDULED", "ACTIVE", lambda now: bookings.c.starts_at <= now),
    "end_sessions": ("ACTIVE", "ENDED", lambda now: bookings.c.ends_at <= now - END_GRACE),
}


#: Rows a sweep lists per pass; it passes again while the last pass moved something.
BATCH = 1000


def run_sweep(engine: Engine, name: str, now: datetime, *, actor: str | None = None) -> int:
    """Move every due row of sweep ``name``, one transaction each; returns how many it moved.

    Rows held by someone else are skipped: the next interval retries them."""
    source, target, due = SWEEPS[name]
    moved = 0
    while True:
        with engine.connect() as conn:
            ids = conn.execute(select(bookings.c.id).where(and_(bookings.c.status == source, due(now)))
                               .order_by(bookings.c.id).limit(BATCH)).scalars().all()
        moved_in_pass = sum(_claim_and_move(engine, booking_id, source, target, due(now), actor or f"sweep:{name}")
                            for booking_id in ids)
        moved += moved_in_pass
        if not moved_in_pass:
            return moved


def _claim_and_move(engine: Engine, booking_id: int, source: str, target: str, due, actor: str) -> bool:
    with engine.begin() as conn:  # one transaction per row
        row = conn.execute(select(bookings.c.version)
                           .where(and_(bookings.c.id == booking_id, bookings.c.status == source, due))
                           .with_for_update(skip_locked=True)).first()
        if row is None:
            return False  # moved already (idempotent), or held by another sweep or request: skip
        _change(conn, booking_id, row.version, source, target, actor)
        return True


def api_change(engine: Engine, booking_id: int, source: str, target: str, *, actor: str) -> bool:
    """What an API request does: lock the row (waiting for a sweep's short transaction), change it
    if it is still in ``source``. False when it is not (someone else moved it first)."""
    with engine.begin() as conn:
        row = conn.execute(select(bookings.c.status, bookings.c.version).where(bookings.c.id == booking_id)
                           .with_for_update()).first()
        if row is None or row.status != source:
            return False
        _change(conn, booking_id, row.version, source, target, actor)
        return True


def _change(conn: Connection, booking_id: int, version: int, source: str, target: str, actor: str) -> None:
    changed = conn.execute(update(bookings).where(and_(bookings.c.id == booking_id, bookings.c.status == source,
                                                       bookings.c.version == version))
                           .values(status=target, version=version + 1)).rowcount
    if changed != 1:  # cannot happen under the row lock; on SQLite the version check is the guard
        raise RuntimeError(f"booking {booking_id} changed under its lock")
    conn.execute(insert(transitions).values(booking_id=booking_id, from_status=source, to_status=target,
                                            actor=actor, version=version + 1))

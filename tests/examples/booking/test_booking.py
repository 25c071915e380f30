"""Booking transitions under contention on a real, private Postgres (seed 002): 10,000 bookings,
two concurrent sweeps (the real worker's, and a second process's during the ADR's "parallel
running period") and API writers changing rows at the same time. No lost update, no double
transition, no deadlock, every row in its right state."""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from examples.booking import jobs
from examples.booking.tables import bookings, engine_for, transitions
from examples.booking.transitions import SWEEPS, api_change, run_sweep
from tests.postgres import fresh_database_url

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
# initial group -> (count, status, requested_at, starts_at, ends_at). Most rows are not due, as in a
# real table: 2,000 transitions to make among 10,000 bookings.
GROUPS = {
    "old_request": (700, "REQUESTED", NOW - 25 * HOUR, NOW + DAY, NOW + DAY + HOUR),
    "new_request": (2000, "REQUESTED", NOW - HOUR, NOW + DAY, NOW + DAY + HOUR),
    "starting": (700, "SCHEDULED", NOW - 2 * DAY, NOW - MINUTE, NOW + HOUR),
    "later": (2800, "SCHEDULED", NOW - 2 * DAY, NOW + DAY, NOW + DAY + HOUR),
    "ended": (600, "ACTIVE", NOW - 2 * DAY, NOW - HOUR, NOW - 10 * MINUTE),
    "in_grace": (200, "ACTIVE", NOW - 2 * DAY, NOW - HOUR, NOW - 2 * MINUTE),
    "past": (3000, "ENDED", NOW - 9 * DAY, NOW - 7 * DAY, NOW - 7 * DAY + HOUR),
}
#: Where each group may end: by the sweeps' rules, whatever the API did first.
ALLOWED = {"old_request": {"EXPIRED", "SCHEDULED"}, "new_request": {"REQUESTED", "SCHEDULED"},
           "starting": {"ACTIVE", "CANCELLED"}, "later": {"SCHEDULED", "CANCELLED"}, "ended": {"ENDED"},
           "in_grace": {"ACTIVE"}, "past": {"ENDED"}}
API_WRITES_EACH = 400
API_OPS = {"REQUESTED": "SCHEDULED", "SCHEDULED": "CANCELLED"}  # confirm a request, cancel a session


@pytest.fixture
def booking_db(request, monkeypatch):
    url = fresh_database_url(request)
    monkeypatch.setenv("BOOKING_DATABASE_URL", url)
    engine = engine_for(url)
    rows, group_of = [], {}
    for group, (count, status, requested_at, starts_at, ends_at) in GROUPS.items():
        for _ in range(count):
            rows.append({"id": len(rows) + 1, "status": status, "requested_at": requested_at,
                         "starts_at": starts_at, "ends_at": ends_at, "version": 0})
            group_of[len(rows)] = group
    with engine.begin() as conn:
        conn.execute(insert(bookings), rows)
    return engine, group_of, {r["id"]: r["status"] for r in rows}


def test_two_concurrent_sweeps_and_api_writers_on_10000_bookings(app, worker, booking_db):
    engine, group_of, initial = booking_db
    assert engine.dialect.name == "postgresql" and len(initial) == 10_000
    errors: list[BaseException] = []
    api_done: list[tuple[int, str]] = []
    stop = threading.Event()

    def guarded(body):
        def run():
            try:
                body()
            except BaseException as exc:  # a deadlock or any other failure fails the test
                errors.append(exc)
        return threading.Thread(target=run)

    def second_sweeper():
        for name in SWEEPS:
            run_sweep(engine, name, NOW, actor=f"sweep2:{name}")

    def api_writer(seed: int):
        rng = random.Random(seed)
        for _ in range(API_WRITES_EACH):
            if stop.is_set():
                return
            booking_id = rng.randint(1, 10_000)
            source = initial[booking_id]
            if source in API_OPS and api_change(engine, booking_id, source, API_OPS[source], actor=f"api{seed}"):
                api_done.append((booking_id, source))

    started = time.monotonic()
    writers = [guarded(lambda s=s: api_writer(s)) for s in (1, 2)]
    for thread in writers:
        thread.start()
    sweeper = guarded(second_sweeper)
    sweeper.start()
    results = [app.send_task(f"booking.{name}", kwargs={"now": NOW.isoformat()}) for name in SWEEPS]
    moved_by_worker = [r.get(timeout=120) for r in results]
    sweeper.join(timeout=120)
    stop.set()
    for thread in writers:
        thread.join(timeout=30)
    assert errors == []
    # the next interval: rows a sweep skipped while an API request held them
    retried = [app.send_task(f"booking.{name}", kwargs={"now": NOW.isoformat()}).get(timeout=60) for name in SWEEPS]
    elapsed_s = time.monotonic() - started

    with engine.connect() as conn:
        final = {r.id: r for r in conn.execute(select(bookings))}
        log = defaultdict(list)
        for t in conn.execute(select(transitions).order_by(transitions.c.id)):
            log[t.booking_id].append(t)
    for booking_id, row in final.items():
        history = log[booking_id]
        status = initial[booking_id]
        for version, t in enumerate(history, 1):  # each change starts where the last ended: none lost
            assert (t.from_status, t.version) == (status, version), (booking_id, history)
            status = t.to_status
        assert (row.status, row.version) == (status, len(history)), booking_id
        assert len({t.from_status for t in history}) == len(history), booking_id  # no double transition
        assert row.status in ALLOWED[group_of[booking_id]], (booking_id, group_of[booking_id], row.status)
    api_rows = sorted((t.booking_id, t.from_status) for h in log.values() for t in h if t.actor.startswith("api"))
    assert api_rows == sorted(api_done) and api_done  # every API write landed once, and only those
    sweep_moves = sum(1 for h in log.values() for t in h if t.actor.startswith("sweep"))
    assert sweep_moves == sum(moved_by_worker) + sum(retried) + sum(
        1 for h in log.values() for t in h if t.actor.startswith("sweep2"))
    assert {r.status for r in final.values() if group_of[r.id] == "ended"} == {"ENDED"}
    assert elapsed_s < 60, f"took {elapsed_s:.1f} s"
    print(f"\n10,000 bookings: {sweep_moves} sweep moves (worker {sum(moved_by_worker)}, "
          f"second sweeper {sweep_moves - sum(moved_by_worker) - sum(retried)}, next interval {sum(retried)}), "
          f"{len(api_done)} API writes, {elapsed_s:.1f} s")


def test_the_schedule_passes_check(monkeypatch):
    from click.testing import CliRunner

    from tasks import cli

    monkeypatch.setenv("BEATKEEPER_EXAMPLE", "booking")
    monkeypatch.delenv("BEATKEEPER_SCHEDULE", raising=False)
    result = CliRunner().invoke(cli.main, ["check"])
    assert result.exit_code == 0, result.output
    for line in ("booking-expire-requests: booking.expire_requests, every 5m",
                 "booking-start-sessions: booking.start_sessions, every 1m",
                 "booking-end-sessions: booking.end_sessions, every 1m"):
        assert line in result.output


def test_on_sqlite_the_sweeps_move_each_due_row_once_and_again_nothing(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path / 'booking.db'}")
    with engine.begin() as conn:
        conn.execute(insert(bookings), [
            {"id": i + 1, "status": status, "requested_at": req, "starts_at": start, "ends_at": end, "version": 0}
            for i, (_, (count, status, req, start, end)) in enumerate(GROUPS.items())])
    moved = {name: run_sweep(engine, name, NOW) for name in SWEEPS}
    assert moved == {"expire_requests": 1, "start_sessions": 1, "end_sessions": 1}
    assert {name: run_sweep(engine, name, NOW) for name in SWEEPS} == dict.fromkeys(SWEEPS, 0)  # idempotent
    with engine.connect() as conn:
        assert [r.status for r in conn.execute(select(bookings).order_by(bookings.c.id))] == [
            "EXPIRED", "REQUESTED", "ACTIVE", "SCHEDULED", "ENDED", "ACTIVE", "ENDED"]

"""The gift exchange's recurring jobs end to end: the real beat scheduler on an injected clock
publishing the example's schedule to a real worker, against the real tables, e-mail to a real
local SMTP server; each run in beatkeeper's history (the design's job execution log). Seed 003."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml
from sqlalchemy import func, insert, select

from examples.gift_exchange import jobs
from examples.gift_exchange.lifecycle import RETENTION, WARNING_LEAD
from examples.gift_exchange.tables import (as_utc, exchanges, magic_tokens, participants, rate_limits,
                                           reminders_sent, sessions)
from tests.examples.gift_exchange.conftest import live_beat
from tests.servers import wait_until

SCHEDULE = yaml.safe_load((Path(jobs.__file__).parent / "schedule.yaml").read_text())
CLEANUPS = "gift-token-cleanup,gift-session-cleanup,gift-rate-limit-cleanup"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def add_exchange(engine, name: str, exchange_at: datetime, *, state: str = "matched", people: int = 2) -> int:
    with engine.begin() as conn:
        exchange_id = conn.execute(insert(exchanges).values(
            name=name, state=state, exchange_at=exchange_at, timezone="Europe/London", reminder_days="7,3,1",
            admin_email=f"admin-{name.lower()}@x.test")).inserted_primary_key[0]
        conn.execute(insert(participants), [{"exchange_id": exchange_id, "name": f"p{i}", "email": f"p{i}@x.test",
                                             "reminder_enabled": True} for i in range(people)])
        [first] = conn.execute(select(participants.c.id).where(participants.c.exchange_id == exchange_id)
                               .limit(1)).scalars().all()
        conn.execute(insert(reminders_sent).values(participant_id=first, days_before=7, exchange_at=exchange_at,
                                                   sent_at=exchange_at - timedelta(days=7)))
    return exchange_id


def row(engine, exchange_id: int):
    with engine.connect() as conn:
        return conn.execute(select(exchanges).where(exchanges.c.id == exchange_id)).first()


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_completed_exchanges_are_warned_about_once_then_purged_30_days_after_completion(
        app, worker, gift_db, mail, app_history, monkeypatch, tmp_path):
    office = add_exchange(gift_db, "Office", utc(2027, 1, 10, 18))
    family = add_exchange(gift_db, "Family", utc(2027, 1, 20, 18))
    club = add_exchange(gift_db, "Club", utc(2027, 1, 5, 18), state="cancelled")
    beat = live_beat(app, monkeypatch, tmp_path, SCHEDULE, start=utc(2027, 1, 10, 12), disable=CLEANUPS)
    completed_at = utc(2027, 1, 11)  # the first auto-complete at 00:00 UTC after 2027-01-10 18:00
    warned_at = completed_at + RETENTION - WARNING_LEAD + timedelta(hours=2)  # the 02:00 purge 23 days later
    purged_at = completed_at + RETENTION + timedelta(hours=2)  # 30 days later, a week after the warning
    assert (warned_at, purged_at) == (utc(2027, 2, 3, 2), utc(2027, 2, 10, 2))

    day = completed_at
    while day <= purged_at:
        beat.run_until(day + timedelta(hours=3))  # the day's auto-complete (00:00) and purge (02:00)
        finished(app, app_history, "gift-auto-complete", day)
        finished(app, app_history, "gift-purge", day + timedelta(hours=2))
        office_row = row(gift_db, office)
        if day + timedelta(hours=2) < purged_at:
            assert office_row.state == "completed" and as_utc(office_row.completed_at) == completed_at
            assert as_utc(office_row.purge_warned_at) == (warned_at if day >= warned_at - timedelta(hours=2) else None)
        else:
            assert office_row is None
        assert len(mail.messages) == (1 if day >= warned_at - timedelta(hours=2) else 0), day  # warned once
        day += timedelta(days=1)

    [(to, message)] = mail.messages
    assert to == ["admin-office@x.test"]
    assert str(message["Subject"]) == "Office: its data will be deleted on 10 February 2027"
    assert count(gift_db, participants, participants.c.exchange_id == office) == 0
    assert count(gift_db, reminders_sent) == 2  # office's went with it; family's and the club's stay
    assert row(gift_db, family).state == "completed" and row(gift_db, family).purge_warned_at is None
    assert row(gift_db, club).state == "cancelled"  # never completed, never purged


def finished(app, history, entry: str, fire_at: datetime) -> None:
    """Wait until the run of ``entry`` at ``fire_at`` is in beatkeeper's history (the design's job
    execution log) as a success, and its result stored (its overlap lock is free by then).

    Beat may send an instant again when the injected clock outruns the worker's acknowledgement
    (tasks/beat/delivery_watch.py); the worker runs it once and records the copy ``skipped_duplicate``."""
    def recorded():
        history.drain()
        records = [r for r in history.query(entry=entry, limit=100) if r.fire_at == fire_at]
        return records if any(r.status == "success" for r in records) else None

    records = wait_until(recorded, timeout_s=60, interval_s=0.05, what=f"the run of {entry} at {fire_at}")
    [record] = [r for r in records if r.status != "skipped_duplicate"]
    assert record.status == "success", record
    app.AsyncResult(record.task_id).get(timeout=60)


def test_a_purge_that_missed_the_warning_night_warns_first_and_deletes_a_week_later(app, worker, gift_db_on, mail):
    gift_db = gift_db_on
    office = add_exchange(gift_db, "Office", utc(2027, 1, 10, 18), state="completed")
    with gift_db.begin() as conn:
        conn.execute(exchanges.update().values(completed_at=utc(2027, 1, 11)))
    late = utc(2027, 2, 15, 2)  # 35 days after completion, never warned
    assert app.send_task("gift_exchange.purge", kwargs={"now": late.isoformat()}).get(timeout=60) == {
        "warned": 1, "purged": 0}
    assert str(mail.messages[0][1]["Subject"]) == "Office: its data will be deleted on 22 February 2027"
    week_later = (late + WARNING_LEAD).isoformat()
    before = (late + WARNING_LEAD - timedelta(minutes=1)).isoformat()
    assert app.send_task("gift_exchange.purge", kwargs={"now": before}).get(timeout=60) == {"warned": 0, "purged": 0}
    assert app.send_task("gift_exchange.purge", kwargs={"now": week_later}).get(timeout=60) == {
        "warned": 0, "purged": 1}
    assert row(gift_db, office) is None and len(mail.messages) == 1


def test_the_cleanups_delete_what_has_expired_and_keep_the_rest(app, worker, gift_db_on):
    gift_db = gift_db_on
    now = utc(2027, 3, 1, 3)
    hour = timedelta(hours=1)
    with gift_db.begin() as conn:
        conn.execute(insert(magic_tokens), [
            {"email": "a@x", "token_hash": "expired", "expires_at": now - hour, "used_at": None},
            {"email": "a@x", "token_hash": "live", "expires_at": now + hour, "used_at": None},
            {"email": "a@x", "token_hash": "used-yesterday", "expires_at": now + hour, "used_at": now - 25 * hour},
            {"email": "a@x", "token_hash": "used-today", "expires_at": now + hour, "used_at": now - 23 * hour}])
        conn.execute(insert(sessions), [{"id": "old", "email": "a@x", "expires_at": now - hour},
                                        {"id": "new", "email": "a@x", "expires_at": now + hour}])
        conn.execute(insert(rate_limits), [{"key": "old", "hits": 3, "expires_at": now},
                                           {"key": "new", "hits": 1, "expires_at": now + hour}])
    kwargs = {"now": now.isoformat()}
    assert app.send_task("gift_exchange.cleanup_tokens", kwargs=kwargs).get(timeout=60) == 2
    assert app.send_task("gift_exchange.cleanup_sessions", kwargs=kwargs).get(timeout=60) == 1
    assert app.send_task("gift_exchange.cleanup_rate_limits", kwargs=kwargs).get(timeout=60) == 1
    with gift_db.connect() as conn:
        assert set(conn.execute(select(magic_tokens.c.token_hash)).scalars()) == {"live", "used-today"}
        assert set(conn.execute(select(sessions.c.id)).scalars()) == {"new"}
        assert set(conn.execute(select(rate_limits.c.key)).scalars()) == {"new"}

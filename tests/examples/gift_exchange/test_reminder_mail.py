"""A reminder's instant (09:00 local in the exchange's zone, across DST) and what its run sends:
the real worker, the real tables, a real local SMTP server (aiosmtpd). Seed 003."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from celery.exceptions import TaskRevokedError
from sqlalchemy import func, insert, select, update

from examples.gift_exchange.jobs import SEND_REMINDER
from examples.gift_exchange.reminders import REMINDER_HEADER, reminder_instant
from examples.gift_exchange.tables import exchanges, participants, reminders_sent
from tasks import headers
from tests.servers import free_port

UTC = timezone.utc


def local(zone: str, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize("zone,exchange,expected", [
    pytest.param("America/New_York", (2027, 3, 15, 18), ["2027-03-08T14:00", "2027-03-12T14:00", "2027-03-14T13:00"],
                 id="new_york_day_after_spring_forward_keeps_09_00_local"),
    pytest.param("Australia/Sydney", (2027, 4, 5, 18), ["2027-03-28T22:00", "2027-04-01T22:00", "2027-04-03T23:00"],
                 id="sydney_day_after_fall_back_keeps_09_00_local"),
    pytest.param("Europe/London", (2027, 3, 29, 18), ["2027-03-22T09:00", "2027-03-26T09:00", "2027-03-28T08:00"],
                 id="london_day_after_spring_forward_keeps_09_00_local"),
    pytest.param("Australia/Sydney", (2027, 3, 18, 18), ["2027-03-10T22:00", "2027-03-14T22:00", "2027-03-16T22:00"],
                 id="sydney_no_change"),
])
def test_reminders_are_at_09_00_local_7_3_and_1_days_before(zone, exchange, expected):
    exchange_at = local(zone, *exchange)
    instants = [reminder_instant(exchange_at, zone, days) for days in (7, 3, 1)]
    assert [i.strftime("%Y-%m-%dT%H:%M") for i in instants] == expected
    assert {i.astimezone(ZoneInfo(zone)).strftime("%H:%M") for i in instants} == {"09:00"}


@pytest.fixture
def gift_db(gift_db_on):
    """These tests run on SQLite and on Postgres."""
    return gift_db_on


@pytest.fixture
def exchange(gift_db):
    with gift_db.begin() as conn:
        exchange_id = conn.execute(insert(exchanges).values(
            name="Office", state="matched", exchange_at=local("America/New_York", 2027, 3, 15, 18),
            timezone="America/New_York", reminder_days="7,3,1", admin_email="admin@x.test")).inserted_primary_key[0]
        conn.execute(insert(participants), [
            {"exchange_id": exchange_id, "name": "Ann", "email": "ann@x.test", "reminder_enabled": True,
             "withdrawn_at": None},
            {"exchange_id": exchange_id, "name": "Bob", "email": "bob@x.test", "reminder_enabled": False,
             "withdrawn_at": None},
            {"exchange_id": exchange_id, "name": "Cy", "email": "cy@x.test", "reminder_enabled": True,
             "withdrawn_at": datetime(2027, 3, 1, tzinfo=UTC)},
            {"exchange_id": exchange_id, "name": "Di", "email": "di@x.test", "reminder_enabled": True,
             "withdrawn_at": None}])
    return exchange_id


def run_reminder(app, exchange_id: int, days_before: int, fire_at: datetime | None) -> dict:
    sent = headers.dispatch_headers(f"gift:reminder:{exchange_id}:{days_before}d", fire_at) if fire_at else None
    return app.send_task(SEND_REMINDER, kwargs={"exchange_id": exchange_id, "days_before": days_before},
                         headers=sent).get(timeout=60)


def test_a_reminder_mails_each_opted_in_participant_once(app, worker, gift_db, mail, exchange):
    due = datetime(2027, 3, 14, 13, tzinfo=UTC)  # 09:00 EDT, the day after the change
    assert run_reminder(app, exchange, 1, due) == {"exchange_id": exchange, "days_before": 1, "outcome": "sent",
                                                   "sent": 2}
    assert sorted(to for to, _ in mail.messages) == [["ann@x.test"], ["di@x.test"]]  # not Bob (opted out), not Cy
    message = mail.messages[0][1]
    assert str(message["Subject"]) == "Office: tomorrow"
    assert message[REMINDER_HEADER] == "2027-03-14T13:00:00+00:00"
    assert "Monday 15 March 2027 at 18:00 (America/New_York)" in message.get_content()
    with pytest.raises(TaskRevokedError, match="skipped_duplicate"):  # the same instant again: beatkeeper's guard
        run_reminder(app, exchange, 1, due)
    assert run_reminder(app, exchange, 1, None)["sent"] == 0  # by hand: the example's own record says sent
    assert len(mail.messages) == 2


def test_a_run_for_an_instant_the_exchange_no_longer_has_or_a_cancelled_exchange_sends_nothing(
        app, worker, gift_db, mail, exchange):
    old_instant = datetime(2027, 3, 14, 14, tzinfo=UTC)  # queued before the exchange moved an hour
    assert run_reminder(app, exchange, 1, old_instant)["outcome"] == "stale"
    assert run_reminder(app, exchange, 2, datetime(2027, 3, 13, 14, tzinfo=UTC))["outcome"] == "stale"  # no 2-day
    with gift_db.begin() as conn:
        conn.execute(update(exchanges).values(state="cancelled"))
    assert run_reminder(app, exchange, 1, datetime(2027, 3, 14, 13, tzinfo=UTC))["outcome"] == "not_matched"
    assert mail.messages == []


def test_a_failed_send_leaves_nothing_recorded_and_the_next_attempt_sends(
        app, worker, gift_db, mail, exchange, monkeypatch):
    monkeypatch.setenv("GIFT_SMTP_PORT", str(free_port()))  # nobody listens there
    with pytest.raises(ConnectionRefusedError):
        run_reminder(app, exchange, 3, None)
    with gift_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(reminders_sent)).scalar_one() == 0
    monkeypatch.setenv("GIFT_SMTP_PORT", str(mail.port))
    assert run_reminder(app, exchange, 3, None)["sent"] == 2
    assert [str(m["Subject"]) for _, m in mail.messages] == ["Office: in 3 days"] * 2

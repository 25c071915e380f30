"""Per-exchange reminders as dynamic entries, end to end: the application matches three exchanges
(Australia/Sydney, America/New_York the day after its DST change, Europe/London), the real beat
scheduler on an injected clock dispatches them to the real worker, the e-mails arrive at a real
local SMTP server; changing preferences replaces them, cancelling removes them. Seed 003."""
from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from examples.gift_exchange.jobs import SEND_REMINDER
from examples.gift_exchange.reminders import REMINDER_HEADER
from examples.gift_exchange.scheduling import (ENTRY_PREFIX, cancel_exchange, exchange_prefix, match_exchange,
                                               update_preferences)
from examples.gift_exchange.tables import exchanges, participants
from schedules.zones import UnknownTimezone
from tasks.dynamic.entries import DynamicEntries, EntryRefused
from tests.tasks.beat.harness import PublishingScheduler
from tests.examples.gift_exchange.conftest import LiveBeat
from tests.monitoring.databases import app_history, sqlite_url  # noqa: F401
from tests.servers import free_port, wait_until

UTC = timezone.utc
START = datetime(2027, 3, 1, tzinfo=UTC)
CHANGES_AT = datetime(2027, 3, 12, tzinfo=UTC)
END = datetime(2027, 3, 27, tzinfo=UTC)
#: name -> (zone, local exchange moment)
EXCHANGES = {"Sydney": ("Australia/Sydney", datetime(2027, 3, 18, 18)),
             "New York": ("America/New_York", datetime(2027, 3, 15, 18)),  # DST began 2027-03-14 02:00
             "London": ("Europe/London", datetime(2027, 3, 20, 18))}
#: What arrives: (exchange, days before, instant (UTC), its local hour in its zone at the time)
FIRST_PART = [("New York", 7, "2027-03-08T14:00"), ("Sydney", 7, "2027-03-10T22:00")]
SECOND_PART = [("New York", 3, "2027-03-12T14:00"), ("New York", 1, "2027-03-14T13:00"),  # EST then EDT
               ("London", 7, "2027-03-19T08:00"), ("London", 3, "2027-03-23T08:00"),  # moved to Berlin, CET
               ("London", 1, "2027-03-25T08:00")]


class DispatchRecordingScheduler(PublishingScheduler):
    """Publishes for real, and notes the test clock's time of each dispatch."""

    dispatched: list[tuple[str, datetime, datetime]]

    def _publish(self, entry, fire_at, producer, expires_at=None):
        self.dispatched.append((entry.name, fire_at, self.app.now()))
        return super()._publish(entry, fire_at, producer, expires_at)


class RecordingLiveBeat(LiveBeat):
    def start(self) -> DispatchRecordingScheduler:
        scheduler = DispatchRecordingScheduler(app=self.app, max_interval=self.max_interval_s,
                                               lock_timeout=5 * self.max_interval_s, lazy=False)
        scheduler.dispatched = self.dispatched = getattr(self, "dispatched", [])
        return scheduler


def add_exchange(engine, name: str) -> int:
    zone, moment = EXCHANGES[name]
    with engine.begin() as conn:
        exchange_id = conn.execute(insert(exchanges).values(
            name=name, state="open", exchange_at=moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC),
            timezone=zone, reminder_days="7,3,1", admin_email="admin@x.test")).inserted_primary_key[0]
        conn.execute(insert(participants), [
            {"exchange_id": exchange_id, "name": f"{name} {i}", "email": f"{name.replace(' ', '')}{i}@x.test",
             "reminder_enabled": True, "withdrawn_at": None} for i in (1, 2)])
    return exchange_id


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def arrived(mail) -> Counter:
    """(recipient, subject, scheduled instant) of every e-mail received."""
    return Counter((to[0], str(m["Subject"]), datetime.fromisoformat(m[REMINDER_HEADER])) for to, m in mail.messages)


def expected_mail(part) -> Counter:
    subject = {7: "in 7 days", 3: "in 3 days", 1: "tomorrow"}
    return Counter((f"{name.replace(' ', '')}{i}@x.test", f"{name}: {subject[days]}", instant(at))
                   for name, days, at in part for i in (1, 2))


def test_reminders_arrive_at_09_00_local_are_replaced_on_change_and_removed_on_cancel(
        app, worker, gift_db, mail, monkeypatch, tmp_path):
    beat = RecordingLiveBeat(app, monkeypatch, tmp_path, {}, start=START,
                             env={"BEATKEEPER_DISABLE": "beatkeeper-heartbeat,beatkeeper-purge-history"})
    entries = DynamicEntries.for_app(app)
    ids = {name: add_exchange(gift_db, name) for name in EXCHANGES}
    for name, exchange_id in ids.items():
        assert match_exchange(gift_db, entries, exchange_id, now=beat.clock.now) == [
            f"{ENTRY_PREFIX}{exchange_id}:{days}d" for days in (1, 3, 7)]
    assert entries.get(f"{exchange_prefix(ids['New York'])}1d")["at"] == "2027-03-14T09:00:00"

    beat.run_until(CHANGES_AT)
    wait_until(lambda: sum(arrived(mail).values()) >= 4, timeout_s=60, what="the first reminders")
    assert arrived(mail) == expected_mail(FIRST_PART)

    assert cancel_exchange(gift_db, entries, ids["Sydney"]) == 2  # its 3- and 1-day reminders
    assert entries.names(exchange_prefix(ids["Sydney"])) == []
    berlin = datetime(2027, 3, 26, 18, tzinfo=ZoneInfo("Europe/Berlin"))
    assert update_preferences(gift_db, entries, ids["London"], exchange_at=berlin, zone_name="Europe/Berlin",
                              now=beat.clock.now) == [f"{exchange_prefix(ids['London'])}{d}d" for d in (1, 3, 7)]
    assert entries.get(f"{exchange_prefix(ids['London'])}7d")["at"] == "2027-03-19T09:00:00"

    beat.run_until(END)
    wait_until(lambda: sum(arrived(mail).values()) >= 14, timeout_s=60, what="the other reminders")
    assert arrived(mail) == expected_mail(FIRST_PART) + expected_mail(SECOND_PART)
    for (_, _, at), (name, _, _) in zip(sorted(expected_mail(FIRST_PART + SECOND_PART)),
                                        sorted(FIRST_PART + SECOND_PART, key=lambda p: p[2])):
        pass
    for _, message in mail.messages:  # 09:00 in the exchange's zone (London's moved to Berlin)
        exchange_zone = {"Sydney": "Australia/Sydney", "New York": "America/New_York",
                         "London": "Europe/Berlin"}[str(message["Subject"]).split(":")[0]]
        local = datetime.fromisoformat(message[REMINDER_HEADER]).astimezone(ZoneInfo(exchange_zone))
        assert local.strftime("%H:%M") == "09:00", message
    # dispatched at their instants, each once; the replaced and cancelled ones never
    reminders = [(name, fire_at, clock) for name, fire_at, clock in beat.dispatched if name.startswith(ENTRY_PREFIX)]
    assert sorted((name, fire_at) for name, fire_at, _ in reminders) == sorted(
        (f"{exchange_prefix(ids[name])}{days}d", instant(at)) for name, days, at in FIRST_PART + SECOND_PART)
    assert all(clock - fire_at < timedelta(seconds=1) for _, fire_at, clock in reminders), reminders
    assert entries.names(ENTRY_PREFIX) == []  # one-offs leave once dispatched


def test_a_refused_change_leaves_the_exchanges_and_their_reminders_as_they_were(
        app, redis_client, gift_db, monkeypatch):
    """The reminders' budget (declared on the task) allows 4 pending: a second exchange's are
    refused with check's line; a mistyped zone is refused before any entry is touched."""
    monkeypatch.setattr(app, "now", lambda: START)
    monkeypatch.setattr(app.tasks[SEND_REMINDER], "max_runs_per_hour", 4)
    entries = DynamicEntries.for_app(app)
    london, new_york = add_exchange(gift_db, "London"), add_exchange(gift_db, "New York")
    match_exchange(gift_db, entries, london, now=START)
    before = {name: entries.get(name) for name in entries.names(ENTRY_PREFIX)}
    assert len(before) == 3

    with pytest.raises(EntryRefused) as refused:
        match_exchange(gift_db, entries, new_york, now=START)
    assert f"task '{SEND_REMINDER}' is projected at 5 runs/hour" in str(refused.value)
    assert "over its budget of 4 runs/hour" in str(refused.value)
    with pytest.raises(UnknownTimezone):
        update_preferences(gift_db, entries, london, zone_name="Europe/Londn", now=START)

    assert {name: entries.get(name) for name in entries.names(ENTRY_PREFIX)} == before
    with gift_db.connect() as conn:
        rows = {r.id: (r.state, r.timezone) for r in conn.execute(select(exchanges))}
    assert rows == {london: ("matched", "Europe/London"), new_york: ("open", "America/New_York")}


def test_after_downtime_a_reminder_is_caught_up_within_its_hour_of_grace_and_dropped_after(
        app, worker, gift_db, mail, monkeypatch, tmp_path):
    """The design's misfire grace of 1 h for reminders: beat down over New York's 7-day reminder
    for 30 minutes sends it late, down over London's for 2 hours does not send it at all."""
    beat = RecordingLiveBeat(app, monkeypatch, tmp_path, {}, start=START,
                             env={"BEATKEEPER_DISABLE": "beatkeeper-heartbeat,beatkeeper-purge-history"})
    entries = DynamicEntries.for_app(app)
    ids = {name: add_exchange(gift_db, name) for name in ("New York", "London")}
    for exchange_id in ids.values():
        match_exchange(gift_db, entries, exchange_id, now=START)
    new_york_7d, london_7d = instant("2027-03-08T14:00"), instant("2027-03-13T09:00")

    beat.run_until(new_york_7d - timedelta(hours=1))
    beat.clock.now = new_york_7d + timedelta(minutes=30)  # beat was down meanwhile
    beat.restart()
    beat.run_until(london_7d - timedelta(hours=1))
    beat.clock.now = london_7d + timedelta(hours=2)
    beat.restart()
    beat.run_until(london_7d + timedelta(hours=3))

    wait_until(lambda: len(mail.messages) >= 4, timeout_s=60, what="New York's reminders")
    assert arrived(mail) == expected_mail([("New York", 7, "2027-03-08T14:00"), ("New York", 3, "2027-03-12T14:00")])
    sent = [(name, fire_at, (clock - fire_at) // timedelta(seconds=1)) for name, fire_at, clock in beat.dispatched]
    assert sent == [(f"{exchange_prefix(ids['New York'])}7d", new_york_7d, 30 * 60),  # late, on beat's return
                    (f"{exchange_prefix(ids['New York'])}3d", instant("2027-03-12T14:00"), 0)]
    assert not {f"{exchange_prefix(i)}7d" for i in ids.values()} & set(entries.names(ENTRY_PREFIX))  # both gone


class RefusingSecondMessage:
    """A real SMTP server (aiosmtpd) that answers the second message with a temporary failure,
    once ``release`` is set (the test sets it when the worker may compute the retry's time)."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if len(receiver.accepted) + len(receiver.refused) == 1:
                    receiver.holding.set()
                    await asyncio.get_running_loop().run_in_executor(None, receiver.release.wait, 60)
                    receiver.refused.append(envelope.rcpt_tos[0])
                    return "451 4.3.0 try again later"
                receiver.accepted.append(envelope.rcpt_tos[0])
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()


def test_a_failed_send_is_retried_by_the_reminders_policy_and_nobody_is_mailed_twice(
        app, worker, gift_db, mail, app_history, monkeypatch, tmp_path):
    server = RefusingSecondMessage()
    real_now = app.now
    try:
        monkeypatch.setenv("GIFT_SMTP_PORT", str(server.port))
        beat = LiveBeat(app, monkeypatch, tmp_path, {}, start=START,
                        env={"BEATKEEPER_DISABLE": "beatkeeper-heartbeat,beatkeeper-purge-history"})
        london = add_exchange(gift_db, "London")
        match_exchange(gift_db, DynamicEntries.for_app(app), london, now=START)
        beat.run_until(instant("2027-03-13T09:00") + timedelta(seconds=1))  # the 7-day reminder
        server.holding.wait(60)
        # Celery dates a retry by app.now(): the worker waits for it in real time, so back to the real clock
        monkeypatch.setattr(app, "now", real_now)
        server.release.set()
        entry = f"{exchange_prefix(london)}7d"

        def retried_or_failed() -> bool:
            app_history.drain()
            return len(server.accepted) >= 2 or bool(app_history.query(entry=entry, status="failure"))

        wait_until(retried_or_failed, timeout_s=60, what="the retried reminder")
        assert (server.accepted, server.refused) == (["London1@x.test", "London2@x.test"], ["London2@x.test"])
        records = wait_until(lambda: app_history.drain() is not None and len(
            found := app_history.query(entry=entry)) >= 2 and found, timeout_s=60, what="the two attempts")
        assert sorted((r.attempt, r.status, r.error_type) for r in records) == [
            (0, "retry", "SMTPDataError"), (1, "success", None)]
    finally:
        server.release.set()
        server.controller.stop()

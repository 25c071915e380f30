"""The Founders pricing-lock sweep end to end: the real beat scheduler on an injected clock
publishing to a real worker, against the example's real tables (SQLite; the advisory lock on a
private Postgres). Seeds 000 and 001."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import insert, select

from examples.founders import jobs
from examples.founders.sweep import GRACE_DAYS, WARNING_DAYS, due_status
from examples.founders.tables import engine_for, subscriptions, sweep_runs, warnings
from tasks.beat.scheduler import BeatkeeperScheduler
from tasks.locks.advisory import database_lock
from tests.tasks.beat.harness import BeatDriver
from tests.postgres import fresh_database_url
from tests.servers import wait_until

SCHEDULE = yaml.safe_load((Path(jobs.__file__).parent / "schedule.yaml").read_text())
FIRST_DAY = date(2027, 1, 1)
LAST_DAY = date(2027, 2, 9)
SKIPPED = {date(2027, 1, 6), date(2027, 1, 7)}  # beat down, nobody sweeps by hand either
EXPIRIES = {"a@x": date(2027, 2, 1), "b@x": date(2027, 1, 20), "c@x": date(2027, 1, 10), "d@x": date(2027, 1, 6)}


class LiveScheduler(BeatkeeperScheduler):
    """The real scheduler, publishing for real, on the test's clock."""

    def on_lock_lost(self, exc: Exception) -> None:
        raise AssertionError(f"lost the beat lock: {exc}")


class LiveBeat(BeatDriver):
    def start(self) -> LiveScheduler:
        return LiveScheduler(app=self.app, max_interval=self.max_interval_s, lock_timeout=5 * self.max_interval_s,
                             lazy=False)


@pytest.fixture
def founders_db(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'founders.db'}"
    monkeypatch.setenv("FOUNDERS_DATABASE_URL", url)
    monkeypatch.delenv("FLAG_FOUNDERS_PROMO", raising=False)
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(insert(subscriptions), [{"email": e, "lock_expires_on": d, "status": "active"}
                                             for e, d in EXPIRIES.items()])
    return engine


def runs(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(sweep_runs).order_by(sweep_runs.c.id)).all()


def statuses(engine) -> dict[str, tuple[str, date | None]]:
    with engine.connect() as conn:
        return {r.email: (r.status, r.status_since) for r in conn.execute(select(subscriptions))}


def expected_sent_on(due_on: date) -> date:
    day = max(due_on, FIRST_DAY)
    while day in SKIPPED:
        day += timedelta(days=1)
    return day


def test_three_sweeps_a_day_and_two_missed_nights_send_each_warning_once_and_transition_on_the_right_day(
        app, worker, founders_db, monkeypatch, tmp_path):
    beat = LiveBeat(app, monkeypatch, tmp_path, SCHEDULE, start=datetime(2026, 12, 31, 23, 0, tzinfo=timezone.utc),
                    env={"BEATKEEPER_DISABLE": "beatkeeper-heartbeat,beatkeeper-purge-history"})
    day, expected_runs = FIRST_DAY, 0
    while day <= LAST_DAY:
        midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        if day in SKIPPED:
            beat.clock.now = midnight + timedelta(days=1) - timedelta(minutes=30)
            beat.restart()  # beat comes back; catchup: skip, the next night corrects
            day += timedelta(days=1)
            continue
        beat.run_until(midnight + timedelta(hours=2))  # 01:00 UTC: the scheduled sweep
        expected_runs += 1
        wait_until(lambda: len(runs(founders_db)) >= expected_runs, timeout_s=60, what=f"the sweep of {day}")
        for _ in range(2):  # and twice more by hand the same day (09:00, 17:00), one after the other
            app.send_task(jobs.TASK, kwargs={"as_of": day.isoformat()}).get(timeout=60)
            expected_runs += 1
        for email, (status, since) in statuses(founders_db).items():  # every transition on its day
            assert (status, since) == due_status(EXPIRIES[email], day), (email, day)
        beat.run_until(midnight + timedelta(days=1) - timedelta(minutes=30))
        day += timedelta(days=1)

    swept = runs(founders_db)
    assert len(swept) == expected_runs == 3 * ((LAST_DAY - FIRST_DAY).days + 1 - len(SKIPPED))
    assert {r.outcome for r in swept} == {"swept"}
    assert not {r.as_of for r in swept} & SKIPPED
    with founders_db.connect() as conn:
        sent = {(r.subscription_id, r.days_before): (r.due_on, r.sent_on) for r in conn.execute(select(warnings))}
        ids = {r.email: r.id for r in conn.execute(select(subscriptions))}
    expected = {(ids[e], n): (d - timedelta(days=n), expected_sent_on(d - timedelta(days=n)))
                for e, d in EXPIRIES.items() for n in WARNING_DAYS}
    assert sent == expected  # each warning exactly once (the key), sent on its day or the first sweep after
    assert sum(r.warnings_sent for r in swept) == len(expected) == 16
    assert statuses(founders_db) == {e: ("lapsed", d + timedelta(days=GRACE_DAYS)) for e, d in EXPIRIES.items()}
    assert sum(r.transitions for r in swept) == 2 * len(EXPIRIES)


def test_the_flag_off_makes_each_run_exit_at_once_recorded_as_such(app, worker, founders_db, monkeypatch):
    monkeypatch.setenv("FLAG_FOUNDERS_PROMO", "off")
    result = app.send_task(jobs.TASK, kwargs={"as_of": "2027-01-25"}).get(timeout=30)
    assert result == {"as_of": "2027-01-25", "outcome": "flag_off", "warnings_sent": 0, "transitions": 0}
    assert [r.outcome for r in runs(founders_db)] == ["flag_off"]
    assert set(statuses(founders_db).values()) == {("active", None)}  # b, c, d were due to move: nothing moved
    with founders_db.connect() as conn:
        assert conn.execute(select(warnings)).all() == []


def test_the_kill_switch_removes_the_entry_at_registration(app, redis_client, monkeypatch, tmp_path):
    from tasks import cli
    from tests.tasks.cli.test_check_contract import start_beat

    monkeypatch.setenv("BEATKEEPER_EXAMPLE", "founders")
    monkeypatch.delenv("BEATKEEPER_SCHEDULE", raising=False)
    monkeypatch.setenv("FOUNDERS_PROMO_SCHEDULER_DISABLED", "1")
    result = CliRunner().invoke(cli.main, ["check"])
    assert result.exit_code == 0, result.output
    assert "founders-promo: founders.pricing_lock_sweep" in result.output
    assert "LEFT OUT: FOUNDERS_PROMO_SCHEDULER_DISABLED is set" in result.output
    redis_client.delete("redbeat:founders-promo")
    assert "founders-promo" not in start_beat(app, monkeypatch, tmp_path, None).specs
    assert not redis_client.exists("redbeat:founders-promo")
    monkeypatch.delenv("FOUNDERS_PROMO_SCHEDULER_DISABLED")
    assert "founders-promo" in start_beat(app, monkeypatch, tmp_path, None).specs


@pytest.fixture
def founders_postgres(request, monkeypatch):
    url = fresh_database_url(request)
    monkeypatch.setenv("FOUNDERS_DATABASE_URL", url)
    return engine_for(url)


def test_on_postgres_a_sweep_while_another_holds_the_advisory_lock_exits_recorded_as_locked(
        app, worker, founders_postgres):
    with database_lock(founders_postgres, jobs.LOCK_NAME) as lease:
        assert lease.backend == "postgres" and lease
        held = app.send_task(jobs.TASK, kwargs={"as_of": "2027-01-02"}).get(timeout=30)
    free = app.send_task(jobs.TASK, kwargs={"as_of": "2027-01-02"}).get(timeout=30)
    assert (held["outcome"], free["outcome"]) == ("locked", "swept")
    assert [r.outcome for r in runs(founders_postgres)] == ["locked", "swept"]

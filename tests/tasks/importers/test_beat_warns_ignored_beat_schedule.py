"""Beat runs only the validated schedule: each entry a user put in ``app.conf.beat_schedule``
is named in a warning with the import command, and never dispatched. Real scheduler, real
Redis, injected clock (tests/tasks/beat/harness.py)."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from celery.schedules import crontab

from tests.tasks.beat.harness import BeatDriver, utc

START = utc(2026, 11, 2, 0, 0, 30)
SCHEDULE = {"every-minute": {"task": "beatkeeper.heartbeat", "every": 60}}


@pytest.fixture
def legacy_beat_schedule(app):
    """A user's own Celery beat_schedule on the app (Celery's settings cannot be monkeypatched away)."""
    previous = app.conf.beat_schedule
    app.conf.beat_schedule = {
        "nightly-report": {"task": "beatkeeper.heartbeat", "schedule": crontab(minute=0, hour=3)},
        "poll": {"task": "beatkeeper.heartbeat", "schedule": 15.0}}
    yield
    app.conf.beat_schedule = previous


def test_beat_names_each_ignored_beat_schedule_entry_and_how_to_import_it(app, redis_client, monkeypatch,
                                                                         tmp_path, caplog, legacy_beat_schedule):
    with caplog.at_level(logging.WARNING, logger="beatkeeper.beat"):
        driver = BeatDriver(app, monkeypatch, tmp_path, SCHEDULE, start=START)
    warnings = [r.getMessage() for r in caplog.records if "app.conf.beat_schedule" in r.getMessage()]
    assert warnings == [
        f"beat: app.conf.beat_schedule entry '{name}' is ignored: beat runs only the validated schedule "
        f"(BEATKEEPER_SCHEDULE); import it with `beatkeeper import --from-celery MODULE:APP --out schedule.yaml`"
        for name in ("nightly-report", "poll")]
    driver.run_until(START + timedelta(minutes=3))
    assert {name for name, _ in driver.sent} == {"every-minute"}

    caplog.clear()  # a restart sees only beat's own entries there: nothing more to warn about
    with caplog.at_level(logging.WARNING, logger="beatkeeper.beat"):
        driver.restart()
    assert not [r for r in caplog.records if "app.conf.beat_schedule" in r.getMessage()]

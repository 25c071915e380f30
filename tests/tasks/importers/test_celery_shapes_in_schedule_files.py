"""What a Celery user writes by habit in a schedule file: a pytz (or zoneinfo) zone object as
``timezone`` in a ``.py`` file is read as its name; a Celery-shaped entry (``schedule:``,
``options:``) is refused with the way to import it."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from schedules.errors import ScheduleConfigError
from schedules.loader import load_schedule_file
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def validate(raw):
    return validate_schedule(raw, settings=ScheduleSettings(), registered_tasks=None, now=NOW)


def test_a_py_schedule_file_may_give_timezone_as_a_pytz_or_zoneinfo_zone(tmp_path):
    path = tmp_path / "schedule.py"
    path.write_text(
        "import pytz\nfrom zoneinfo import ZoneInfo\n"
        "SCHEDULE = {\n"
        "    'sync': {'task': 'etl.sync', 'cron': '0 3 * * *', 'timezone': pytz.timezone('Australia/Sydney')},\n"
        "    'report': {'task': 'etl.report', 'cron': '0 9 * * mon', 'timezone': ZoneInfo('Europe/London')},\n"
        "}\n")
    entries = validate(load_schedule_file(path)).entries
    assert entries["sync"].timezone == "Australia/Sydney"
    assert entries["sync"].trigger.next_fire_after(NOW) == datetime(2026, 6, 1, 17, tzinfo=timezone.utc)
    assert entries["report"].timezone == "Europe/London"
    assert entries["sync"].config["timezone"] == "Australia/Sydney"  # the file's fingerprint holds the name


def test_a_zone_object_without_an_iana_name_is_still_refused_in_one_line():
    with pytest.raises(ScheduleConfigError) as caught:
        validate({"sync": {"task": "etl.sync", "cron": "0 3 * * *", "timezone": timezone.utc}})
    assert [str(p) for p in caught.value.problems] == [
        "entry 'sync': timezone: expected a string, got timezone datetime.timezone.utc"]


def test_a_celery_shaped_entry_is_refused_with_the_import_command_as_the_hint():
    with pytest.raises(ScheduleConfigError) as caught:
        validate({"gtfs-rt-poll": {"task": "etl.poll", "schedule": 15.0, "options": {"expires": 30}}})
    lines = [str(p) for p in caught.value.problems]
    hint = ("; this is a Celery beat_schedule entry: write every, cron or at (and queue, expires... as keys), "
            "or convert it with `beatkeeper import --from-celery module:attr`")
    assert f"entry 'gtfs-rt-poll': schedule: unknown key 'schedule'{hint}" in lines
    assert f"entry 'gtfs-rt-poll': options: unknown key 'options'{hint}" in lines

"""The conversion of one Celery entry, in-process: cron fields as cron reads them, the one
crontab shape cron cannot say refused, options carried or named as not carried."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from celery.schedules import crontab

from tasks.importers.celery_entries import Refused, convert_entry, cron_text

SYDNEY = "Australia/Sydney"


@pytest.mark.parametrize(("value", "expected"), [
    (crontab(), "* * * * *"),
    (crontab(minute=0, hour=3), "0 3 * * *"),
    (crontab(minute="*/15", hour="7-9,17-19"), "*/15 7-9,17-19 * * *"),
    (crontab(minute=[0, 1, 2, 30], hour={4, 5, 6, 8}), "0-2,30 4-6,8 * * *"),  # sets: written from the values
    (crontab(minute=5, day_of_week="sat,sun"), "5 * * * sat,sun"),
    (crontab(minute=0, hour=0, day_of_month="1", month_of_year="1,7"),
     "0 0 1 1,7 *"),
])
def test_crontab_fields_become_the_cron_line_selecting_the_same_values(value, expected):
    assert cron_text(value) == expected


def test_a_crontab_restricting_both_day_of_month_and_day_of_week_is_refused_with_why():
    with pytest.raises(Refused, match="Celery fires on days matching both, cron on days matching either"):
        cron_text(crontab(minute=0, hour=9, day_of_month="1-7", day_of_week="mon"))


def test_options_are_carried_as_keys_or_named_as_not_carried():
    imported = convert_entry({"task": "t", "schedule": timedelta(seconds=90), "args": (1,),
                              "options": {"queue": "q", "expires": 60, "time_limit": timedelta(minutes=2),
                                          "priority": 9, "expires_at": "x"}},
                             app_zone=timezone.utc)
    assert imported.entry == {"task": "t", "every": "90s", "args": [1], "queue": "q", "expires": "1m",
                              "time_limit": "2m"}
    assert imported.notes == [
        "option priority=9 is not carried: beatkeeper has no priority key: runs go at the queue's default priority",
        "option expires_at='x' is not carried"]


def test_an_absolute_expires_and_a_missing_task_are_reported():
    imported = convert_entry({"task": "t", "schedule": 30, "options": {"expires": datetime(2027, 1, 1)}},
                             app_zone=timezone.utc)
    assert "expires" not in imported.entry
    assert imported.notes[0].startswith("option expires=datetime.datetime(2027, 1, 1, 0, 0) is not carried")
    with pytest.raises(Refused, match="has no task name"):
        convert_entry({"schedule": 30}, app_zone=timezone.utc)

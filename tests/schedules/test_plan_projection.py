"""Plan projections over short windows (issue 18): a weekly or monthly entry is not 0 runs per
hour because the window was one day; counting a year of a busy cron across DST stays exact."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from schedules.cron import CronTrigger
from schedules.plan import build_plan, count_fires
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule

START = datetime(2026, 3, 30, 0, 0, tzinfo=timezone.utc)  # Sydney falls back on 5 April


def plan_of(raw: dict, days: float):
    validated = validate_schedule(raw, settings=ScheduleSettings(), registered_tasks={"t"}, now=START)
    return build_plan(validated, start=START, end=START + timedelta(days=days))


@pytest.mark.parametrize("days", [1 / 24, 1, 3, 7, 30])
def test_weekly_and_monthly_entries_project_the_same_over_any_window(days):
    plan = plan_of({"weekly": {"task": "t", "cron": "0 2 * * 0", "timezone": "Australia/Sydney"},
                    "monthly": {"task": "t", "cron": "0 4 1 * *"},
                    "daily": {"task": "t", "cron": "0 3 * * *", "timezone": "Australia/Sydney"}}, days)
    assert plan.costs["weekly"].runs_per_day == pytest.approx(1 / 7)
    assert plan.costs["monthly"].runs_per_month == pytest.approx(30 * 48 / (4 * 365 + 1))
    assert plan.costs["daily"].runs_per_day == pytest.approx(1.0)


def test_an_interval_entry_projects_exactly_in_a_short_window():
    plan = plan_of({"poll": {"task": "t", "every": 15}}, 1 / 24)
    assert (plan.costs["poll"].runs_per_hour, plan.costs["poll"].fires_in_window) == (240, 240)


@pytest.mark.parametrize("expr", ["*/2 * * * *", "30 2 * * *", "0,30 1-3 * * 0"])
def test_counting_across_the_years_transitions_equals_the_fires_one_by_one(expr):
    trigger = CronTrigger(expr, timezone="Australia/Sydney")
    start, end = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert count_fires(trigger, start, end) == sum(1 for _ in trigger.fires_between(start, end))

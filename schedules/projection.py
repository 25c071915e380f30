"""Over how long a period an entry's runs per hour are measured, so that a short plan window
still projects a weekly or monthly entry correctly (a weekly job is not 0 runs/hour because
the window was one day).

The period is the plan window rounded up to whole cycles of the entry's calendar:
a day for a cron firing every day, a week for one restricted by weekday and for windows
entries (their rates change by local hour and weekday), a leap-year cycle's 4 x 365 + 1 days for
one restricted by day of month or month. Interval entries are exact in any window.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from schedules.cron import CronTrigger
from schedules.trigger import Trigger
from schedules.windows import WindowsTrigger

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
LEAP_CYCLE = timedelta(days=4 * 365 + 1)


def cycle_of(trigger: Trigger) -> timedelta:
    """The period after which the entry's calendar repeats (DST aside); zero when any window is exact."""
    if isinstance(trigger, CronTrigger):
        expr = trigger.expr
        if expr.dom_restricted or len(expr.months) < 12:
            return LEAP_CYCLE
        return WEEK if expr.dow_restricted else DAY
    if isinstance(trigger, WindowsTrigger):
        return WEEK
    return timedelta(0)


def projection_end(trigger: Trigger, start: datetime, end: datetime) -> datetime:
    """The end of the period whose fires give the entry's runs per hour: the window rounded up
    to whole cycles of the entry's calendar (``end`` itself for an interval entry)."""
    cycle = cycle_of(trigger)
    if not cycle:
        return end
    return start + cycle * math.ceil((end - start) / cycle)

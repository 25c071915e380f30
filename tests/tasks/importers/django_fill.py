"""Creates django-celery-beat's tables with its own migrations, fills them through its models
with every schedule kind, and prints (JSON) the fire instants django-celery-beat's own
schedule objects compute for each enabled entry over the week from argv[1].

Run as ``python -m tests.tasks.importers.django_fill START`` with BEATKEEPER_TEST_DJANGO_DB set."""
from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.tasks.importers.django_settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django_celery_beat.models import (  # noqa: E402
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

WEEK = timedelta(days=7)


def fill(start: datetime) -> None:
    every_15m = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.MINUTES)
    hourly = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    sydney = CrontabSchedule.objects.create(minute="30", hour="2", day_of_week="*", day_of_month="*",
                                            month_of_year="*", timezone="Australia/Sydney")
    new_york = CrontabSchedule.objects.create(minute="*/20", hour="9-17", day_of_week="mon-fri", day_of_month="*",
                                              month_of_year="*", timezone="America/New_York")
    once = ClockedSchedule.objects.create(clocked_time=start + timedelta(days=2, hours=5))
    sunset = SolarSchedule.objects.create(event="sunset", latitude=-33.87, longitude=151.21)
    PeriodicTask.objects.create(name="poll-15m", task="shapes.poll", interval=every_15m, queue="singleton",
                                expire_seconds=600, start_time=start - timedelta(days=3, minutes=53))
    PeriodicTask.objects.create(name="report-sydney", task="shapes.report", crontab=sydney,
                                args=json.dumps([1, "a"]), kwargs=json.dumps({"region": "nsw"}),
                                expires=start + timedelta(days=60))
    PeriodicTask.objects.create(name="office-hours", task="shapes.nightly", crontab=new_york, priority=3)
    PeriodicTask.objects.create(name="clocked-once", task="shapes.nightly", clocked=once, one_off=True)
    PeriodicTask.objects.create(name="hourly-off", task="shapes.poll", interval=hourly, enabled=False,
                                start_time=start - timedelta(days=1))
    PeriodicTask.objects.create(name="lights-on", task="shapes.nightly", solar=sunset)


def fires_of(task: PeriodicTask, start: datetime) -> list[str]:
    """What the task's own schedule object says, driven by a clock: is_due from the last run."""
    schedule = task.schedule
    now = [start]
    tz = getattr(schedule, "tz", None)
    schedule.nowfun = lambda: now[0].astimezone(tz) if tz is not None else now[0]
    if task.interval is not None:  # its runs since start_time: the last one before the week
        every = schedule.run_every
        last = task.start_time + ((start - task.start_time) // every) * every
    else:
        last = start
    found = []
    while now[0] < start + WEEK:
        due, next_s = schedule.is_due(last)
        if due:
            found.append(now[0].isoformat())
            last = now[0]
            if task.one_off:
                break
        now[0] = now[0] + timedelta(seconds=max(next_s, 1))
    return found


if __name__ == "__main__":
    start = datetime.fromisoformat(sys.argv[1])
    call_command("migrate", verbosity=0)
    fill(start)
    expected = {task.name: fires_of(task, start)
                for task in PeriodicTask.objects.filter(enabled=True, solar__isnull=True).order_by("name")}
    print(json.dumps(expected))

"""One Celery beat_schedule with every entry shape ``beatkeeper import`` reads (golden test:
tests/tasks/importers/golden/every_shape.yaml), on an app whose timezone is Europe/London."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytz
from celery import Celery
from celery.schedules import crontab, schedule

TOKYO = pytz.timezone("Asia/Tokyo")


def _tokyo_now() -> datetime:
    return datetime.now(TOKYO)


_new_york_cron = crontab(minute=15, hour=8)
_new_york_cron.tz = ZoneInfo("America/New_York")  # a per-schedule zone, as django-celery-beat's TzAwareCrontab sets it
_sydney_cron = crontab(minute=30, hour=2)
_sydney_cron.tz = pytz.timezone("Australia/Sydney")

app = Celery("every-shape", set_as_current=False)
app.conf.timezone = "Europe/London"
app.conf.beat_schedule = {
    "cron-app-zone": {"task": "shapes.nightly", "schedule": crontab(minute=30, hour=1)},
    "cron-nowfun-pytz": {"task": "shapes.nightly", "schedule": crontab(minute=0, hour=7, nowfun=_tokyo_now)},
    "cron-own-zoneinfo": {"task": "shapes.nightly", "schedule": _new_york_cron},
    "cron-own-pytz": {"task": "shapes.nightly", "schedule": _sydney_cron},
    "cron-names": {"task": "shapes.nightly", "schedule": crontab(minute="*/20", hour="9-17", day_of_week="mon-fri")},
    "cron-month-days": {"task": "shapes.nightly",
                        "schedule": crontab(minute=0, hour=4, day_of_month="1,15", month_of_year="*/3")},
    "every-number": {"task": "shapes.poll", "schedule": 30, "options": {"queue": "singleton", "priority": 5}},
    "every-float": {"task": "shapes.poll", "schedule": 45.0, "options": {"expires": 40.0}},
    "every-timedelta": {"task": "shapes.poll", "schedule": timedelta(minutes=10),
                        "options": {"expires": timedelta(minutes=5), "time_limit": 120, "soft_time_limit": 100}},
    "every-schedule": {"task": "shapes.report", "schedule": schedule(timedelta(hours=1)),
                       "args": (1, "a"), "kwargs": {"region": "nsw"}, "options": {"routing_key": "reports"}},
}

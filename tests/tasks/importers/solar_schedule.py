"""A beat_schedule with a solar entry (refused in one line) beside an ordinary one."""
import sys
import types

from celery.schedules import crontab, solar

try:
    import ephem  # noqa: F401  (Celery's solar needs it; the importer refuses before asking it anything)
except ImportError:  # a stand-in for the outside library: its Observer only receives attributes
    sys.modules["ephem"] = types.SimpleNamespace(Observer=types.SimpleNamespace)

beat_schedule = {
    "lights-on": {"task": "shapes.nightly", "schedule": solar("sunset", -33.87, 151.21)},
    "nightly": {"task": "shapes.nightly", "schedule": crontab(minute=0, hour=3)},
}

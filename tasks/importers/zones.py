"""The IANA name of a zone object as Celery users hold them: a name, pytz's zones (``.zone``),
zoneinfo's (``.key``), UTC; and the zone a Celery schedule object is evaluated in."""
from __future__ import annotations

from datetime import timezone, tzinfo
from zoneinfo import ZoneInfo


class ZoneNameError(ValueError):
    """A zone without an IANA name (a fixed offset): beatkeeper's entries name their zone."""


def zone_name(tz: object) -> str:
    """``'Australia/Sydney'`` for ``pytz.timezone('Australia/Sydney')``, its ``ZoneInfo``, or the name."""
    if isinstance(tz, str):
        return tz
    if tz is timezone.utc:
        return "UTC"
    name = getattr(tz, "zone", None) or getattr(tz, "key", None)
    if isinstance(name, str):
        return name
    raise ZoneNameError(f"time zone {tz!r} has no IANA name")


def zone_object(tz: object) -> tzinfo:
    """A tzinfo for ``tz``; zone objects are kept as they are (a pytz zone stays pytz, as in Celery)."""
    if isinstance(tz, str):
        return ZoneInfo(tz)
    zone = getattr(tz, "zone", None)
    if isinstance(zone, str) and not hasattr(tz, "localize"):
        import pytz  # a pytz tzinfo of one offset (from a localized datetime): its whole zone
        return pytz.timezone(zone)
    return tz  # type: ignore[return-value]


def schedule_zone(schedule: object, app_zone: object) -> object:
    """The zone a Celery crontab is read in: its own ``tz`` (django-celery-beat's
    ``TzAwareCrontab``, or set by hand), else the zone its ``nowfun`` returns times in,
    else the app's timezone."""
    own = getattr(schedule, "__dict__", {}).get("tz")
    if own is not None:
        return own
    nowfun = getattr(schedule, "nowfun", None)
    if nowfun is not None:
        now = nowfun()
        if getattr(now, "tzinfo", None) is not None:
            return zone_object(now.tzinfo)
    return app_zone

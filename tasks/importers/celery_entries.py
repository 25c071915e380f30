"""A Celery ``beat_schedule`` dict -> beatkeeper schedule entries (plain dicts ``check`` reads).

Each Celery entry becomes one beatkeeper entry, or one refusal line saying why it cannot
(``solar``; a crontab restricting both day of month and day of week, which Celery ANDs and
cron ORs). What the conversion cannot carry (``priority``, ``routing_key``, ``soft_time_limit``,
an absolute ``expires``) is a note of the entry, printed with the behaviour report.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab, schedule, solar

from schedules.cronexpr import CronSyntaxError, parse_field
from schedules.durations import format_duration
from tasks.importers.zones import ZoneNameError, schedule_zone, zone_name, zone_object

#: Celery crontab attribute -> (beatkeeper cron field, first value, how many values)
_CRON_FIELDS = (("minute", "minute", 0, 60), ("hour", "hour", 0, 24), ("day_of_month", "day_of_month", 1, 31),
                ("month_of_year", "month", 1, 12), ("day_of_week", "day_of_week", 0, 7))
#: Celery message options carried as beatkeeper keys of the same meaning.
_SECONDS_OPTIONS = {"expires": "expires", "time_limit": "time_limit"}
_DROPPED_OPTIONS = {
    "priority": "beatkeeper has no priority key: runs go at the queue's default priority",
    "soft_time_limit": "beatkeeper raises nothing in the task before time_limit (max_runtime only records a long run)",
    "routing_key": "beatkeeper routes by queue only",
    "exchange": "beatkeeper routes by queue only",
}


class Refused(Exception):
    """An entry with no beatkeeper equivalent; the message is the one line saying why."""


@dataclass
class Imported:
    """One converted entry: the beatkeeper entry, the Celery schedule object it came from
    (run side by side with beatkeeper's trigger), its zone object, and what is not carried."""

    entry: dict[str, Any]
    celery_schedule: Any
    zone: Any = None
    notes: list[str] = field(default_factory=list)
    interval_anchor: str = "beat's start"  # what Celery counts an interval from


@dataclass
class ImportResult:
    imported: dict[str, Imported] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


def solar_refusal(event: str, lat: float, lon: float) -> Refused:
    return Refused(f"solar schedule ({event} at {lat}, {lon}) refused: beatkeeper fires by interval, cron or "
                   f"date, never by the sun's position; keep it on Celery beat or give it a cron time")


def convert_beat_schedule(beat_schedule: Mapping[str, Any], *, app_zone: Any) -> ImportResult:
    """Every entry of ``beat_schedule`` converted, or refused in one line."""
    result = ImportResult()
    for name, raw in beat_schedule.items():
        try:
            result.imported[str(name)] = convert_entry(raw, app_zone=app_zone)
        except Refused as exc:
            result.refused.append(f"entry '{name}': {exc}")
    return result


def convert_entry(raw: Any, *, app_zone: Any) -> Imported:
    if not isinstance(raw, Mapping):
        raise Refused(f"expected a mapping with task and schedule, got {type(raw).__name__}")
    if not isinstance(raw.get("task"), str):
        raise Refused("has no task name")
    entry: dict[str, Any] = {"task": raw["task"]}
    notes: list[str] = []
    zone, celery_schedule = _schedule_keys(raw.get("schedule"), app_zone, entry, notes)
    if raw.get("relative"):
        notes.append("relative=True is not carried: beatkeeper's grid counts from the Unix epoch")
    if raw.get("args"):
        entry["args"] = list(raw["args"])
    if raw.get("kwargs"):
        entry["kwargs"] = dict(raw["kwargs"])
    _options(raw.get("options") or {}, entry, notes)
    for key in sorted(set(raw) - {"task", "schedule", "args", "kwargs", "options", "relative"}):
        notes.append(f"key {key!r} is not a Celery entry key; left out")
    return Imported(entry=entry, celery_schedule=celery_schedule, zone=zone, notes=notes)


def _schedule_keys(value: Any, app_zone: Any, entry: dict[str, Any], notes: list[str]) -> tuple[Any, Any]:
    """Fill ``entry``'s schedule keys; return (zone object or None, the Celery schedule object)."""
    if isinstance(value, solar):
        raise solar_refusal(value.event, value.lat, value.lon)
    if isinstance(value, bool) or value is None:
        raise Refused(f"schedule must be seconds, a timedelta, schedule() or crontab(), got {value!r}")
    if isinstance(value, (int, float, timedelta)):
        value = schedule(value)
    if isinstance(value, schedule):
        seconds = value.run_every.total_seconds()
        if seconds <= 0:
            raise Refused(f"schedule every {seconds:g} s never makes sense")
        entry["every"] = format_duration(seconds)
        return None, value
    if isinstance(value, crontab):
        zone = schedule_zone(value, app_zone)
        try:
            entry["cron"] = cron_text(value)
            entry["timezone"] = zone_name(zone)
        except ZoneNameError as exc:
            raise Refused(f"crontab: {exc}; give the app or the crontab a named zone") from None
        return zone_object(zone), value
    clocked_time = getattr(value, "clocked_time", None)  # django-celery-beat's clocked
    if isinstance(clocked_time, datetime):
        entry["at"] = clocked_time.isoformat()
        return None, value
    raise Refused(f"schedule of type {type(value).__name__} is not one beatkeeper can read "
                  f"(seconds, timedelta, schedule, crontab)")


def cron_text(value: crontab) -> str:
    """The 5-field cron line selecting what ``value`` selects (its own spelling when cron reads it alike)."""
    sets = {}
    for attribute, field_name, first, count in _CRON_FIELDS:
        sets[attribute] = frozenset(getattr(value, attribute))
    full = {attribute: frozenset(range(first, first + count)) for attribute, _, first, count in _CRON_FIELDS}
    if sets["day_of_month"] != full["day_of_month"] and sets["day_of_week"] != full["day_of_week"]:
        raise Refused("crontab restricts both day_of_month and day_of_week: Celery fires on days matching both, "
                      "cron on days matching either; split it into two entries")
    parts = []
    for attribute, field_name, first, count in _CRON_FIELDS:
        original = getattr(value, f"_orig_{attribute}", None)
        text = None
        if isinstance(original, (str, int)) and not isinstance(original, bool):
            candidate = str(original).replace(" ", "").lower()
            try:
                if parse_field(candidate, field_name) == sets[attribute]:
                    text = candidate
            except CronSyntaxError:
                pass
        if text is None:
            text = "*" if sets[attribute] == full[attribute] else _list_text(sets[attribute])
        parts.append(text)
    return " ".join(parts)


def _list_text(values: frozenset[int]) -> str:
    """``{1, 2, 3, 7}`` -> ``"1-3,7"``."""
    ordered = sorted(values)
    runs: list[list[int]] = []
    for number in ordered:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)


def _options(options: Mapping[str, Any], entry: dict[str, Any], notes: list[str]) -> None:
    for key, value in options.items():
        if key == "queue" and isinstance(value, str):
            entry["queue"] = value
        elif key in _SECONDS_OPTIONS and isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
            seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
            entry[_SECONDS_OPTIONS[key]] = format_duration(seconds)
        elif key == "expires":
            notes.append(f"option expires={value!r} is not carried: beatkeeper's expires is seconds after each "
                         f"scheduled instant")
        elif key in _DROPPED_OPTIONS:
            notes.append(f"option {key}={value!r} is not carried: {_DROPPED_OPTIONS[key]}")
        else:
            notes.append(f"option {key}={value!r} is not carried")

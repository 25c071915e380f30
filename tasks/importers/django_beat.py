"""django-celery-beat's tables read with SQLAlchemy (no Django at run time) into Celery-shaped
entries, then converted as a ``beat_schedule`` entry is (:mod:`tasks.importers.celery_entries`).

Rows map as django-celery-beat runs them: interval (``every`` x ``period``, its grid phase
taken from ``start_time``), crontab (with its ``timezone`` column, as its ``TzAwareCrontab``),
clocked (one run at ``clocked_time``: an ``at`` entry), ``enabled``, ``one_off`` (a one-off of
the next fire), ``expire_seconds``/``queue`` (options), JSON ``args``/``kwargs``; ``solar`` is
refused; what has no beatkeeper key (``start_time`` ahead of a cron, ``expires``,
``priority``, ``headers``) is a note.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from celery.schedules import crontab, schedule

from schedules.errors import ConfigFileError
from tasks.importers.celery_entries import ImportResult, Imported, Refused, convert_entry, solar_refusal

_TASKS = "django_celery_beat_periodictask"
_KINDS = {"interval_id": "django_celery_beat_intervalschedule", "crontab_id": "django_celery_beat_crontabschedule",
          "clocked_id": "django_celery_beat_clockedschedule", "solar_id": "django_celery_beat_solarschedule"}


class Clocked:
    """django-celery-beat's ``clocked``: one run at ``clocked_time`` (an aware datetime)."""

    def __init__(self, clocked_time: datetime):
        self.clocked_time = clocked_time


def read_django_celery_beat(url: str, *, now: datetime) -> ImportResult:
    """Every periodic task of the database at ``url`` (its own name kept), converted or refused."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigFileError(_masked(url), f"not a database URL SQLAlchemy can open: {exc}") from None
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database and database != ":memory:" \
            and not Path(database).is_file():  # connecting would create an empty file
        raise ConfigFileError(_masked(url), "no such SQLite file")
    try:
        with engine.connect() as connection:
            tables = {kind: _rows_by_id(connection, table) for kind, table in _KINDS.items()}
            rows = connection.execute(sa.text(f"SELECT * FROM {_TASKS} ORDER BY name")).mappings().all()
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigFileError(_masked(url), f"cannot read django-celery-beat's tables: {reason}") from None
    finally:
        engine.dispose()
    result = ImportResult()
    for row in rows:
        try:
            result.imported[row["name"]] = _convert_row(row, tables, now)
        except Refused as exc:
            result.refused.append(f"entry '{row['name']}': {exc}")
    return result


def _masked(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "the given URL"


def _rows_by_id(connection, table: str) -> dict[Any, Any]:
    return {row["id"]: row for row in connection.execute(sa.text(f"SELECT * FROM {table}")).mappings()}


def _convert_row(row, tables, now: datetime) -> Imported:
    celery_value = _schedule_of(row, tables)
    start_time = _aware(row.get("start_time"))
    options = {}
    if row.get("queue"):
        options["queue"] = row["queue"]
    if row.get("expire_seconds"):
        options["expires"] = row["expire_seconds"]
    if row.get("priority") is not None:
        options["priority"] = row["priority"]
    raw = {"task": row["task"], "schedule": celery_value, "args": _json(row, "args", []),
           "kwargs": _json(row, "kwargs", {}), "options": options}
    imported = convert_entry(raw, app_zone=timezone.utc)
    entry = imported.entry
    if isinstance(celery_value, schedule) and start_time is not None:
        every_s = celery_value.run_every.total_seconds()
        phase_s = start_time.timestamp() % every_s
        if phase_s:
            entry["phase"] = int(phase_s) if phase_s == int(phase_s) else phase_s
        imported.interval_anchor = f"its start_time {start_time.isoformat()}"
    elif start_time is not None and start_time > now and "at" not in entry:
        imported.notes.append(f"start_time {start_time.isoformat()} is not carried: beatkeeper's cron fires from "
                              f"when beat registers it")
    if row.get("one_off") and "at" not in entry:
        imported.notes.append("one_off is not carried: beatkeeper fires it on every matching instant; "
                              "write an at entry for a single run")
    expires = _aware(row.get("expires"))
    if expires is not None:
        imported.notes.append(f"expires {expires.isoformat()} is not carried: beatkeeper keeps firing after it")
    if row.get("headers") not in (None, "", "{}"):
        imported.notes.append(f"headers {row['headers']} are not carried")
    if not _truthy(row.get("enabled", True)):
        entry["enabled"] = False
    if row.get("description"):
        entry["description"] = row["description"]
    return imported


def _schedule_of(row, tables) -> Any:
    if row.get("solar_id") is not None:
        sun = tables["solar_id"][row["solar_id"]]
        raise solar_refusal(sun["event"], float(sun["latitude"]), float(sun["longitude"]))
    if row.get("interval_id") is not None:
        interval = tables["interval_id"][row["interval_id"]]
        return schedule(timedelta(**{interval["period"]: interval["every"]}))
    if row.get("crontab_id") is not None:
        cron = tables["crontab_id"][row["crontab_id"]]
        value = crontab(minute=cron["minute"], hour=cron["hour"], day_of_week=cron["day_of_week"],
                        day_of_month=cron["day_of_month"], month_of_year=cron["month_of_year"])
        value.tz = ZoneInfo(str(cron["timezone"] or "UTC"))  # as django-celery-beat's TzAwareCrontab
        return value
    if row.get("clocked_id") is not None:
        return Clocked(_aware(tables["clocked_id"][row["clocked_id"]]["clocked_time"]))
    raise Refused("has no schedule (interval, crontab, solar or clocked)")


def _aware(value: Any) -> datetime | None:
    """A stored instant: Django keeps UTC (SQLite as naive text, Postgres as timestamptz)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _json(row, column: str, empty: Any) -> Any:
    text = row.get(column)
    if not text:
        return empty
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(f"{column} is not JSON ({exc.msg})") from None


def _truthy(value: Any) -> bool:
    return value not in (False, 0, "0", "f", "false", None)

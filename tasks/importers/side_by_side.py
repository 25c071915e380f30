"""Both schedules run side by side: Celery's own schedule objects (``is_due`` driven by a
simulated clock, as Celery's beat loop drives them) against beatkeeper's triggers, over a
window; every instant where they part is reported, grouped by local day.

The simulated beat wakes when ``is_due`` says the next run is due and, as a real beat
(which sleeps at most ``beat_max_loop_interval``) would, right after each UTC-offset change
of the zone, so Celery's DST arithmetic sees the clocks it would see.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from celery import Celery
from celery.schedules import crontab, schedule

from schedules.durations import format_duration
from schedules.entry import EntrySpec
from schedules.interval import IntervalTrigger
from schedules.trigger import US_PER_S, Trigger, to_epoch_us
from schedules.zones import transitions_s
from tasks.importers.celery_entries import Imported
from tasks.importers.zones import zone_name

MAX_DAYS_LISTED = 8  # differing days listed per entry; the rest are counted
_ONE_S = timedelta(seconds=1)


class _Clock:
    def __init__(self, at: datetime, tz: Any):
        self.at, self.tz = at, tz

    def now(self) -> datetime:
        return self.at.astimezone(self.tz)


@dataclass
class CronRun:
    """Celery's fires, and the stretches ``(after, until)`` stepped over as agreeing."""

    fires: list[datetime] = field(default_factory=list)
    skipped: list[tuple[datetime, datetime]] = field(default_factory=list)


def celery_crontab_fires(value: crontab, tz: Any, start: datetime, end: datetime,
                         ours: Trigger | None = None) -> CronRun:
    """The instants in (start, end) a Celery beat started at ``start`` runs ``value`` at, in ``tz``.

    With ``ours`` (beatkeeper's trigger), stretches where the two already agree are stepped
    over: once two fires in a row since the last offset change agree, Celery's state is that
    of any day, and between offset changes a crontab selects what its cron line does (the
    converter refuses the one shape where they differ). The simulation resumes a day before
    the next change, so every change and the runs after it (a weekly run a week later) are
    computed by Celery itself.
    """
    app = Celery("beatkeeper-import", set_as_current=False)
    app.conf.timezone = tz  # a pytz zone stays pytz: Celery's arithmetic on it is what runs in production
    clock = _Clock(start, tz)
    copy = crontab(minute=value._orig_minute, hour=value._orig_hour, day_of_week=value._orig_day_of_week,
                   day_of_month=value._orig_day_of_month, month_of_year=value._orig_month_of_year,
                   nowfun=clock.now, app=app)
    name = zone_name(tz)
    start_s, end_s = to_epoch_us(start) // US_PER_S, to_epoch_us(end) // US_PER_S
    changes = [datetime.fromtimestamp(at_s, timezone.utc) for at_s, _, _ in transitions_s(name, start_s, end_s)]
    run = CronRun()
    last_run = clock.now()
    agreeing = 0  # fires in a row, since the last offset change, that beatkeeper also has
    while clock.at < end:
        due, next_s = copy.is_due(last_run)
        if due:
            run.fires.append(clock.at)
            last_run = clock.now()
            fire = _whole_s(clock.at)
            agreeing = agreeing + 1 if ours is not None and ours.next_fire_after(fire - _ONE_S) == fire else 0
            if agreeing >= 2 and _step_over(clock, run, ours, changes, end):
                last_run = clock.now()
                continue
        target = clock.at + max(timedelta(seconds=next_s), timedelta(microseconds=1))
        change = next((c for c in changes if c > clock.at), None)
        if change is not None and change < target:
            target, agreeing = change, 0  # a real beat wakes within its loop interval of the change
        clock.at = target
    return run


def _step_over(clock: _Clock, run: CronRun, ours: Trigger, changes: list[datetime], end: datetime) -> bool:
    """Move the clock to beatkeeper's first fire a day before the next offset change (or the
    window's end), taken as Celery's too; False when there is nothing to step over."""
    change = next((c for c in changes if c > clock.at), None)
    limit = change if change is not None else end
    target = ours.next_fire_after(limit - timedelta(days=1))
    if target is None or target >= limit or target <= clock.at + _ONE_S:
        return False
    run.skipped.append((_whole_s(clock.at), target))
    run.fires.append(target)
    clock.at = target
    return True


def _whole_s(instant: datetime) -> datetime:
    return datetime.fromtimestamp(round(instant.timestamp()), timezone.utc)


def report_lines(name: str, imported: Imported, spec: EntrySpec, start: datetime, end: datetime) -> list[str]:
    """What entry ``name`` will do differently under beatkeeper in (start, end): one line each."""
    lines = [f"{name}: {note}" for note in imported.notes]
    celery_value = imported.celery_schedule
    if isinstance(celery_value, crontab):
        lines += _cron_differences(name, imported, spec, start, end)
    elif isinstance(celery_value, schedule) and isinstance(spec.trigger, IntervalTrigger):
        lines.append(_interval_line(name, spec.trigger, celery_value, start, imported.interval_anchor))
    else:  # a one-off: the same instant by construction, unless it is past
        fire = spec.trigger.next_fire_after(start)
        if fire is None:
            lines.append(f"{name}: its one run ({spec.trigger.describe()}) is past; it will never fire")
    return lines


def _interval_line(name: str, trigger: IntervalTrigger, value: schedule, start: datetime, anchor: str) -> str:
    every = format_duration(value.run_every.total_seconds())
    following = trigger.next_fire_after(start).strftime("%H:%M:%S")
    return (f"{name}: interval phase now on a fixed grid: Celery runs every {every} counted from {anchor} "
            f"and then from each actual run (drifting with beat's delays); beatkeeper at phase "
            f"{format_duration(trigger.phase_us / US_PER_S) if trigger.phase_us else '0'} of a grid from the "
            f"Unix epoch (next at {following} UTC after the window start), never drifting")


def _cron_differences(name: str, imported: Imported, spec: EntrySpec, start: datetime, end: datetime) -> list[str]:
    run = celery_crontab_fires(imported.celery_schedule, imported.zone, start, end, ours=spec.trigger)
    celery_fires = {_whole_s(f) for f in run.fires}
    ours: set[datetime] = set()
    low = start + _ONE_S
    for after, until in [*run.skipped, (end, end)]:  # beatkeeper's fires where Celery's were computed
        ours.update(_whole_s(f) for f in spec.trigger.fires_between(low, min(after + _ONE_S, end)))
        low = until
    shown = ZoneInfo(spec.timezone)
    by_day: dict[date, tuple[list[datetime], list[datetime]]] = defaultdict(lambda: ([], []))
    for fire in celery_fires - ours:
        by_day[fire.astimezone(shown).date()][0].append(fire)
    for fire in ours - celery_fires:
        by_day[fire.astimezone(shown).date()][1].append(fire)
    if not by_day:
        return [f"{name}: same fire instants as Celery from {start.date()} to {end.date()}"]
    expr = spec.config.get("cron", "")
    lines = []
    for day in sorted(by_day)[:MAX_DAYS_LISTED]:
        theirs, mine = (sorted(x) for x in by_day[day])
        where = f"on {day.isoformat()} in {spec.timezone}"
        if len(theirs) == 1 and len(mine) == 1:
            lines.append(f"{name}: Celery fires {expr} at {_hhmm(theirs[0], shown)} {where}; "
                         f"beatkeeper at {_hhmm(mine[0], shown)}")
        elif not mine:
            lines.append(f"{name}: Celery fires {expr} also at {_times(theirs, shown)} {where}; beatkeeper does not")
        elif not theirs:
            lines.append(f"{name}: beatkeeper fires {expr} also at {_times(mine, shown)} {where}; Celery does not")
        else:
            lines.append(f"{name}: Celery fires {expr} at {_times(theirs, shown)} {where}; "
                         f"beatkeeper at {_times(mine, shown)}")
    if len(by_day) > MAX_DAYS_LISTED:
        lines.append(f"{name}: ... and on {len(by_day) - MAX_DAYS_LISTED} more days")
    return lines


def _hhmm(instant: datetime, shown: ZoneInfo) -> str:
    return instant.astimezone(shown).strftime("%H:%M %Z")


def _times(instants: list[datetime], shown: ZoneInfo, most: int = 6) -> str:
    text = ", ".join(_hhmm(i, shown) for i in instants[:most])
    return text + (f" (+{len(instants) - most} more)" if len(instants) > most else "")

"""Brute-force oracles for fire times, written independently of schedules/.

They walk real time minute by minute (cron) or grid point by grid point (windows), read
the wall clock with ``datetime.fromtimestamp(ts, ZoneInfo(tz))`` -- UTC to local only,
never local to UTC -- and apply the rules of ``schedules.cron``'s docstring literally:

* a minute whose wall clock matches fires, unless repeat=first and the same wall minute
  was already seen at an earlier instant in the last 48 hours;
* where the wall clock jumps forward (wall(u) != wall(u - 60 s) + 60 s), gap=shift fires
  at u if any of the skipped wall minutes matches.

Only the parsed field sets of a CronExpr are used (parsing is tested on its own). Slow on
purpose: clarity over speed.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)
LOOKBACK_S = 48 * 3600


def wall_matches(expr, wall: datetime) -> bool:
    """Whether the naive local datetime ``wall`` matches the expression's fields."""
    dom_ok = wall.day in expr.days_of_month
    dow_ok = wall.isoweekday() % 7 in expr.days_of_week
    if expr.dom_restricted and expr.dow_restricted:
        day_ok = dom_ok or dow_ok
    else:
        day_ok = dom_ok and dow_ok
    return wall.minute in expr.minutes and wall.hour in expr.hours and wall.month in expr.months and day_ok


def cron_fires(expr, tz: str, start_s: int, end_s: int, *, gap: str, repeat: str) -> list[int]:
    """Fire instants (epoch seconds) in [start_s, end_s) of a cron entry, by brute force."""
    zone = ZoneInfo(tz)
    last_seen: dict[datetime, int] = {}
    previous_wall: datetime | None = None
    fires: list[int] = []
    first = (start_s - LOOKBACK_S) // 60 * 60  # warm up the "already seen" memory
    for u in range(first, end_s, 60):
        wall = datetime.fromtimestamp(u, zone).replace(tzinfo=None)
        fire = False
        if wall_matches(expr, wall):
            seen_at = last_seen.get(wall)
            repeated = seen_at is not None and seen_at >= u - LOOKBACK_S
            fire = repeat == "both" or not repeated
        if gap == "shift" and previous_wall is not None and wall - previous_wall > MINUTE:
            skipped = previous_wall + MINUTE
            while skipped < wall:
                if wall_matches(expr, skipped):
                    fire = True
                    break
                skipped += MINUTE
        last_seen[wall] = u
        previous_wall = wall
        if fire and u >= start_s:
            fires.append(u)
    return fires


@lru_cache(maxsize=None)
def probe_transitions(tz: str, year: int) -> tuple[int, ...]:
    """Instants (epoch seconds) in the UTC year where the zone's UTC offset changes.

    Probes every hour and narrows each change down to the minute by walking.
    """
    zone = ZoneInfo(tz)
    start = int(datetime(year, 1, 1, tzinfo=timezone.utc).timestamp())
    end = int(datetime(year + 1, 1, 1, tzinfo=timezone.utc).timestamp())

    def offset(ts: int) -> timedelta:
        return datetime.fromtimestamp(ts, zone).utcoffset()

    found = []
    for hour_start in range(start, end, 3600):
        if offset(hour_start) != offset(hour_start + 3600):
            for minute in range(hour_start + 60, hour_start + 3601, 60):
                if offset(minute) != offset(minute - 60):
                    found.append(minute)
                    break
    return tuple(found)


def windows_fires(windows, tz: str, start_us: int, end_us: int) -> list[int]:
    """Fire instants (epoch microseconds) in [start_us, end_us) of a windows schedule.

    Every grid point of every window is a candidate; it fires if that window is the
    first whose hours/weekdays match the local wall clock at that point.
    """
    zone = ZoneInfo(tz)

    def in_force(point_us: int) -> int:
        local = datetime.fromtimestamp(point_us // 1_000_000, zone)
        dow = local.isoweekday() % 7
        for index, w in enumerate(windows):
            if (w.hours is None or local.hour in w.hours) and (w.days_of_week is None or dow in w.days_of_week):
                return index
        raise AssertionError("the last window must match everything")

    fires: set[int] = set()
    for index, w in enumerate(windows):
        every_us = round(w.every_s * 1_000_000)
        phase_us = round(w.phase_s * 1_000_000) % every_us
        point = phase_us + -((phase_us - start_us) // every_us) * every_us
        while point < end_us:
            if in_force(point) == index:
                fires.add(point)
            point += every_us
    return sorted(fires)


def min_gap(instants: list[int]) -> int | None:
    """Smallest difference between consecutive instants; None for fewer than two."""
    if len(instants) < 2:
        return None
    return min(b - a for a, b in zip(instants, instants[1:]))


def max_in_any_hour(instants_s: list[int]) -> int:
    """The most instants any half-open real hour [u, u + 3600) holds."""
    best, low = 0, 0
    for high, instant in enumerate(instants_s):
        while instant - instants_s[low] >= 3600:
            low += 1
        best = max(best, high - low + 1)
    return best

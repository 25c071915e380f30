"""WindowsTrigger: per-hour/weekday grids, checked by hand and against a brute-force oracle."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schedules.windows import Window, WindowsTrigger
from tests.schedules import reference

UTC = timezone.utc
SYD = "Australia/Sydney"
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
BUSINESS = [Window(60, hours=frozenset(range(9, 17)), days_of_week=WEEKDAYS), Window(3600)]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def us(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


def test_business_hours_switch_grids_at_local_hours():
    trigger = WindowsTrigger(BUSINESS, timezone=SYD)
    # Friday 2026-06-05 08:00-18:00 in Sydney (+10): 08:00 hourly, 09:00-16:59 every minute,
    # then hourly again from 17:00.
    fires = list(trigger.fires_between(utc("2026-06-04T22:00"), utc("2026-06-05T08:00")))
    local = [f.astimezone(ZoneInfo(SYD)).strftime("%H:%M") for f in fires]
    assert local[:3] == ["08:00", "09:00", "09:01"]
    assert local[-3:] == ["16:58", "16:59", "17:00"]
    assert len(fires) == 1 + 8 * 60 + 1


def test_weekend_uses_default_window():
    trigger = WindowsTrigger(BUSINESS, timezone=SYD)
    # Saturday 2026-06-06 09:00-17:00 local is 2026-06-05T23:00Z-2026-06-06T07:00Z.
    fires = list(trigger.fires_between(utc("2026-06-05T23:00"), utc("2026-06-06T07:00")))
    assert [(b - a) for a, b in zip(fires, fires[1:])] == [timedelta(hours=1)] * 7


def test_first_matching_window_wins():
    trigger = WindowsTrigger(
        [Window(600, hours=frozenset({12})), Window(60, hours=frozenset(range(10, 14))), Window(3600)],
        timezone="UTC",
    )
    fires = list(trigger.fires_between(utc("2026-06-05T12:00"), utc("2026-06-05T13:00")))
    assert len(fires) == 6


def test_window_phase_offsets_its_grid():
    trigger = WindowsTrigger([Window(3600, phase_s=900)], timezone="UTC")
    assert trigger.next_fire_after(utc("2026-06-05T12:00")) == utc("2026-06-05T12:15")


def test_grid_is_real_time_across_spring_forward():
    # Every 30 min all day: the grid ignores DST; the 02:xx hour simply does not exist.
    trigger = WindowsTrigger([Window(1800, hours=frozenset({1, 2, 3})), Window(7200)], timezone=SYD)
    fires = list(trigger.fires_between(utc("2026-10-03T14:00"), utc("2026-10-03T18:00")))
    local = [f.astimezone(ZoneInfo(SYD)).strftime("%H:%M%Z") for f in fires]
    # 00:00 AEST (14:00Z) is on the 2 h default grid, 04:00 AEDT (17:00Z) is not.
    assert local == ["00:00AEST", "01:00AEST", "01:30AEST", "03:00AEDT", "03:30AEDT"]


def test_last_window_must_be_the_default():
    with pytest.raises(ValueError, match="last window"):
        WindowsTrigger([Window(60, hours=frozenset({9}))])
    with pytest.raises(ValueError):
        WindowsTrigger([])


@pytest.mark.parametrize(
    "kwargs",
    [{"every_s": 0}, {"every_s": 60, "hours": frozenset({24})}, {"every_s": 60, "hours": frozenset()},
     {"every_s": 60, "days_of_week": frozenset({8})}],
    ids=["zero_period", "hour_24", "empty_hours", "weekday_8"],
)
def test_bad_window_is_rejected(kwargs):
    with pytest.raises(ValueError):
        Window(**kwargs)


def test_weekday_seven_is_sunday():
    assert Window(60, days_of_week=frozenset({7})).days_of_week == frozenset({0})


def test_peak_and_describe():
    trigger = WindowsTrigger(BUSINESS, timezone=SYD)
    assert trigger.peak_runs_per_hour() == 60
    assert trigger.describe() == "windows Australia/Sydney: every 1m hours 9-16 days 1-5; otherwise every 1h"


# -- min gap ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "windows, tz",
    [
        ([Window(900, hours=frozenset(range(9, 17)), days_of_week=WEEKDAYS), Window(3600)], SYD),
        ([Window(1200, hours=frozenset({2})), Window(2400, phase_s=300)], "Europe/London"),
        ([Window(600, hours=frozenset({0, 12}), phase_s=420), Window(5400)], "Australia/Lord_Howe"),
    ],
    ids=["business_quarter_hours_sydney", "night_window_across_london_transitions",
         "odd_phase_half_hour_shift_zone"],
)
def test_min_gap_over_a_year_equals_enumeration(windows, tz):
    trigger = WindowsTrigger(windows, timezone=tz)
    start, end = utc("2026-01-01T00:00"), utc("2027-01-01T00:00")
    fires = list(trigger.fires_between(start, end))
    enumerated = min((b - a).total_seconds() for a, b in zip(fires, fires[1:]))
    assert trigger.min_gap_s(start, end) == enumerated


def test_boundary_gap_smaller_than_every_window():
    # Hour 9 runs every 30 min (09:00, 09:30); otherwise hourly at :55. 08:55 -> 09:00 is
    # 5 min, smaller than either period; 09:30 -> 10:55 is 85 min.
    trigger = WindowsTrigger([Window(1800, hours=frozenset({9})), Window(3600, phase_s=3300)], timezone="UTC")
    assert trigger.min_gap_s(utc("2026-06-05T00:00"), utc("2026-06-06T00:00")) == 300.0


# -- brute-force oracle -----------------------------------------------------------------------
ORACLE_ZONES = ["Australia/Sydney", "Europe/London", "Australia/Lord_Howe", "America/Santiago",
                "Pacific/Chatham", "Africa/Casablanca", "UTC"]
EVERY_S = [60, 300, 420, 900, 1800, 3600, 5400, 7200, 37.5]


@st.composite
def windows_cases(draw):
    tz = draw(st.sampled_from(ORACLE_ZONES))
    year = draw(st.integers(1995, 2035))
    found = reference.probe_transitions(tz, year)
    centre = draw(st.sampled_from(found)) if found else int(datetime(year, 6, 1, tzinfo=UTC).timestamp())
    local_hour = datetime.fromtimestamp(centre, ZoneInfo(tz)).hour
    hour_pool = sorted({(local_hour + d) % 24 for d in range(-2, 3)})
    windows = []
    for _ in range(draw(st.integers(0, 2))):
        near = st.frozensets(st.sampled_from(hour_pool), min_size=1)
        hours = draw(st.none() | near | st.frozensets(st.integers(0, 23), min_size=1))
        days = draw(st.none() | st.frozensets(st.integers(0, 6), min_size=1, max_size=4))
        if hours is None and days is None:
            hours = frozenset(hour_pool)
        windows.append(Window(draw(st.sampled_from(EVERY_S)), hours=hours, days_of_week=days,
                              phase_s=draw(st.sampled_from([0, 0, 90, 450.5]))))
    windows.append(Window(draw(st.sampled_from(EVERY_S)), phase_s=draw(st.sampled_from([0, 30]))))
    return windows, tz, centre - 2 * 86400, centre + 2 * 86400


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows_cases())
def test_fires_and_min_gap_equal_brute_force(case):
    windows, tz, start_s, end_s = case
    trigger = WindowsTrigger(windows, timezone=tz)
    start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
    got = [us(f) for f in trigger.fires_between(start, end)]
    expected = reference.windows_fires(windows, tz, start_s * 1_000_000, end_s * 1_000_000)
    assert got == expected
    brute_gap = reference.min_gap(expected)
    assert trigger.min_gap_s(start, end) == (None if brute_gap is None else brute_gap / 1_000_000)

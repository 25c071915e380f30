"""AtTrigger: one fire; local wall times resolved by the fixed-time DST rule."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from schedules.oneoff import AtTrigger
from schedules.zones import UnknownTimezone

UTC = timezone.utc


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_fires_once_strictly_after():
    trigger = AtTrigger(utc("2026-06-01T09:00:00"))
    assert trigger.next_fire_after(utc("2026-06-01T08:59:59")) == utc("2026-06-01T09:00:00")
    assert trigger.next_fire_after(utc("2026-06-01T09:00:00")) is None
    assert list(trigger.fires_between(utc("2026-01-01T00:00"), utc("2027-01-01T00:00"))) == [utc("2026-06-01T09:00")]


def test_aware_input_in_another_zone_is_the_same_instant():
    trigger = AtTrigger(datetime(2026, 6, 1, 19, tzinfo=ZoneInfo("Australia/Sydney")))
    assert trigger.at == utc("2026-06-01T09:00") and trigger.at.tzinfo is UTC


@pytest.mark.parametrize(
    "wall, tz, expected, resolution",
    [
        ("2026-10-04T02:30", "Australia/Sydney", "2026-10-03T16:00", "gap"),
        ("2026-10-04T02:00", "Australia/Sydney", "2026-10-03T16:00", "gap"),
        ("2026-04-05T02:30", "Australia/Sydney", "2026-04-04T15:30", "repeated"),
        ("2026-06-01T09:00", "Australia/Sydney", "2026-05-31T23:00", "exact"),
        ("2026-09-06T00:30", "America/Santiago", "2026-09-06T04:00", "gap"),
        ("2026-10-25T01:30", "Europe/Dublin", "2026-10-25T00:30", "repeated"),
        ("2011-12-30T12:00", "Pacific/Apia", "2011-12-30T10:00", "gap"),
    ],
    ids=["gap_wall_time_moves_to_gap_end", "gap_start_moves_to_gap_end", "repeated_wall_time_takes_first",
         "ordinary_wall_time", "santiago_missing_midnight_hour", "dublin_negative_dst_repeat_takes_first",
         "apia_skipped_day"],
)
def test_from_local_resolution(wall, tz, expected, resolution):
    trigger = AtTrigger.from_local(datetime.fromisoformat(wall), timezone=tz)
    assert (trigger.at, trigger.resolution) == (utc(expected), resolution)
    assert trigger.local_time == datetime.fromisoformat(wall)


def test_from_local_keeps_microseconds_of_a_real_wall_time():
    trigger = AtTrigger.from_local(datetime(2026, 6, 1, 9, 0, 0, 250), timezone="UTC")
    assert trigger.at == utc("2026-06-01T09:00:00.000250")


def test_from_local_accepts_aware_as_is():
    aware = datetime(2026, 6, 1, 9, tzinfo=UTC)
    assert AtTrigger.from_local(aware, timezone="Australia/Sydney").at == aware


def test_rejects_naive_and_unknown_zone():
    with pytest.raises(ValueError):
        AtTrigger(datetime(2026, 6, 1, 9))
    with pytest.raises(UnknownTimezone):
        AtTrigger.from_local(datetime(2026, 6, 1, 9), timezone="Atlantis/Capital")


def test_guards_and_describe():
    trigger = AtTrigger.from_local(datetime(2026, 10, 4, 2, 30), timezone="Australia/Sydney")
    assert trigger.peak_runs_per_hour() == 1
    assert trigger.min_gap_s(utc("2026-01-01T00:00"), utc("2027-01-01T00:00")) is None
    assert trigger.describe() == "once at 2026-10-03T16:00:00Z (2026-10-04 02:30:00 Australia/Sydney)"

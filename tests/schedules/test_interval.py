"""IntervalTrigger: an epoch-anchored real-time grid, exact in integer microseconds."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from schedules.interval import IntervalTrigger

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_every_15s_fires_on_quarter_minutes():
    fires = list(IntervalTrigger(15).fires_between(at("2026-03-03T10:00:00"), at("2026-03-03T10:01:00")))
    assert [f.second for f in fires] == [0, 15, 30, 45]
    assert all(f.microsecond == 0 and f.minute == 0 for f in fires)


def test_next_fire_is_strictly_after():
    trigger = IntervalTrigger(15)
    assert trigger.next_fire_after(at("2026-03-03T10:00:15")) == at("2026-03-03T10:00:30")
    assert trigger.next_fire_after(at("2026-03-03T10:00:14.999999")) == at("2026-03-03T10:00:15")


def test_phase_offsets_the_grid():
    trigger = IntervalTrigger(60, phase_s=7.5)
    assert trigger.next_fire_after(at("2026-03-03T10:00:00")) == at("2026-03-03T10:00:07.500000")
    # A phase of more than one period is the same grid.
    assert IntervalTrigger(60, phase_s=67.5) == trigger


def test_fractional_period_has_no_drift_over_a_million_periods():
    trigger = IntervalTrigger(0.1)
    start = at("2026-03-03T00:00:00")
    fires = list(trigger.fires_between(start, start + timedelta(seconds=100_000)))
    assert len(fires) == 1_000_000
    last = fires[-1]
    assert last == start + timedelta(seconds=100_000) - timedelta(microseconds=100_000)
    # Chaining next_fire_after from a fire lands exactly on the next grid point too.
    assert trigger.next_fire_after(last) == start + timedelta(seconds=100_000)


def test_far_grid_point_is_exact():
    # 10**10 periods of 0.7 s after the epoch is exactly 7 * 10**9 s: float seconds would miss.
    trigger = IntervalTrigger(0.7)
    target = EPOCH + timedelta(seconds=7_000_000_000)
    assert trigger.next_fire_after(target - timedelta(microseconds=1)) == target


def test_dst_is_irrelevant():
    sydney = ZoneInfo("Australia/Sydney")
    # Spring forward at 02:00; arithmetic in UTC (aware ZoneInfo arithmetic is wall-clock).
    start = datetime(2026, 10, 4, 0, 0, tzinfo=sydney).astimezone(UTC)
    fires = list(IntervalTrigger(3600).fires_between(start, start + timedelta(hours=6)))
    assert [(b - a) for a, b in zip(fires, fires[1:])] == [timedelta(hours=1)] * 5
    assert [f.astimezone(sydney).hour for f in fires] == [0, 1, 3, 4, 5, 6]


def test_results_are_utc_and_accept_any_aware_input():
    sydney = ZoneInfo("Australia/Sydney")
    fire = IntervalTrigger(60).next_fire_after(datetime(2026, 6, 1, 9, 0, 30, tzinfo=sydney))
    assert fire == at("2026-05-31T23:01:00") and fire.tzinfo is UTC


def test_naive_input_is_rejected():
    with pytest.raises(ValueError):
        IntervalTrigger(60).next_fire_after(datetime(2026, 1, 1))


@pytest.mark.parametrize("every_s", [0, -5, 0.0000001, float("nan")], ids=["zero", "negative", "below_1us", "nan"])
def test_bad_period_is_rejected(every_s):
    with pytest.raises(ValueError):
        IntervalTrigger(every_s)


def test_guards():
    trigger = IntervalTrigger(15)
    assert trigger.peak_runs_per_hour() == 240
    assert trigger.min_gap_s(at("2026-01-01T00:00:00"), at("2026-01-02T00:00:00")) == 15
    assert trigger.min_gap_s(at("2026-01-01T00:00:01"), at("2026-01-01T00:00:16")) is None  # one fire only
    assert IntervalTrigger(7200).peak_runs_per_hour() == 0.5


@pytest.mark.parametrize(
    "every_s, phase_s, text",
    [(15, 0, "every 15s"), (300, 0, "every 5m"), (7200, 0, "every 2h"), (90, 0, "every 90s"),
     (0.25, 0, "every 0.25s"), (60, 30, "every 1m (phase 30s)")],
    ids=["seconds", "minutes", "hours", "non_round_minutes_in_seconds", "fraction", "with_phase"],
)
def test_describe(every_s, phase_s, text):
    assert IntervalTrigger(every_s, phase_s=phase_s).describe() == text

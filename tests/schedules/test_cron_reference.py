"""CronTrigger against the brute-force oracle, around real transitions of many kinds of zone.

Zones cover: ordinary DST both hemispheres (Sydney, New York, London), 30-minute shifts
(Lord_Howe), transitions at 02:45 (Chatham), at midnight (Santiago), negative DST (Dublin,
Casablanca), a whole skipped day (Apia 2011), 2-hour shifts (Troll), half-hour offsets
(Kolkata, St_Johns) and no transitions at all (UTC).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schedules.cron import CronTrigger
from schedules.zones import transitions
from tests.schedules import reference

UTC = timezone.utc
DAY_S = 86400
ZONES = [
    "Australia/Sydney",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
    "Europe/Dublin",
    "Africa/Casablanca",
    "Pacific/Apia",
    "Asia/Kolkata",
    "America/St_Johns",
    "UTC",
    "Antarctica/Troll",
]


def _values_field(draw, low: int, high: int, near: list[int], *, focused: bool) -> str:
    """A cron field: '*', a step, a range, a ranged step or a list; often values from ``near``."""
    kinds = ["near_list"]
    if not focused:
        kinds += ["star", "step", "near_list", "list", "range", "range_step", "start_step"]
    kind = draw(st.sampled_from(kinds))
    if kind == "star":
        return "*"
    if kind == "step":
        return f"*/{draw(st.integers(1, max(1, (high - low) // 2)))}"
    if kind == "near_list":
        picked = draw(st.lists(st.sampled_from(near), min_size=1, max_size=3, unique=True))
        return ",".join(str(v) for v in sorted(picked))
    if kind == "list":
        picked = draw(st.lists(st.integers(low, high), min_size=1, max_size=4, unique=True))
        return ",".join(str(v) for v in sorted(picked))
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    if kind == "range":
        return f"{a}-{b}"
    if kind == "range_step":
        return f"{a}-{b}/{draw(st.integers(1, 10))}"
    return f"{a}/{draw(st.integers(1, 10))}"


@st.composite
def cron_cases(draw, *, focused: bool = False):
    """(expression, zone, window start, window end, gap, repeat) around a real transition.

    ``focused`` cases always sit on a transition, with hours taken from the wall hours
    the transition skips or repeats, so nearly every case exercises gap/repeat rules.
    """
    zones = [z for z in ZONES if z not in ("UTC", "Asia/Kolkata")] if focused else ZONES
    tz = draw(st.sampled_from(zones))
    year = draw(st.integers(1990, 2037))
    found = reference.probe_transitions(tz, year)
    if tz == "Pacific/Apia" and draw(st.booleans()):
        found = reference.probe_transitions(tz, 2011)  # make the skipped day likely
    if found:
        centre = draw(st.sampled_from(found))
    else:
        start_of_year = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
        centre = draw(st.integers(start_of_year, start_of_year + 364 * DAY_S)) // 60 * 60
    zone = reference.ZoneInfo(tz)
    before = datetime.fromtimestamp(centre - 1, zone).replace(tzinfo=None)
    after = datetime.fromtimestamp(centre, zone).replace(tzinfo=None)
    low, high = min(before, after), max(before, after)  # the skipped or repeated wall stretch
    stretch = [low + timedelta(minutes=m) for m in range(0, int((high - low).total_seconds() // 60) + 1, 15)]
    stretch = stretch[:96] or [low]
    near_hours = sorted({w.hour for w in stretch} | {(low.hour - 1) % 24, (high.hour + 1) % 24})
    near_minutes = sorted({0, 15, 30, 45, 59, before.minute, after.minute})
    # Day fields pick independently among the window's days, so dom-OR-dow differs from AND.
    window_days = [low + timedelta(days=d) for d in range(-2, 3)]
    near_days = sorted({w.day for w in window_days + stretch})
    near_dows = sorted({w.isoweekday() % 7 for w in window_days + stretch})

    def star_or(field: str) -> str:
        return "*" if draw(st.booleans()) else field

    fields = [
        _values_field(draw, 0, 59, near_minutes, focused=False),
        _values_field(draw, 0, 23, near_hours, focused=focused),
        star_or(_values_field(draw, 1, 31, near_days, focused=focused)),
        draw(st.sampled_from(["*", f"{low.month}", f"{low.month},{(low.month % 12) + 1}", "1-6"])),
        star_or(_values_field(draw, 0, 6, near_dows, focused=focused)),
    ]
    gap = draw(st.sampled_from([None, "shift", "skip"]))
    repeat = draw(st.sampled_from([None, "first", "both"]))
    return " ".join(fields), tz, centre - 2 * DAY_S, centre + 2 * DAY_S, gap, repeat


def _check_against_oracle(case) -> None:
    expr_text, tz, start_s, end_s, gap, repeat = case
    trigger = CronTrigger(expr_text, timezone=tz, gap=gap, repeat=repeat)
    start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
    got = [int(f.timestamp()) for f in trigger.fires_between(start, end)]
    expected = reference.cron_fires(
        trigger.expr, tz, start_s, end_s, gap=trigger.gap.value, repeat=trigger.repeat.value
    )
    assert got == expected, trigger.describe()

    # The guards must hold on the same fires: min_gap_s never overstates the smallest
    # gap, and no real hour holds more fires than peak_runs_per_hour.
    brute_gap = reference.min_gap(expected)
    reported_gap = trigger.min_gap_s(start, end)
    if brute_gap is None:
        assert reported_gap is None
    else:
        assert reported_gap is not None and reported_gap <= brute_gap
    assert reference.max_in_any_hour(expected) <= trigger.peak_runs_per_hour()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cron_cases())
def test_fires_equal_brute_force_around_transitions(case):
    _check_against_oracle(case)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cron_cases(focused=True))
def test_fires_equal_brute_force_in_skipped_and_repeated_hours(case):
    _check_against_oracle(case)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ZONES), st.integers(1990, 2037))
def test_transitions_match_probe_by_minute(tz, year):
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    got = tuple(int(t.at.timestamp()) for t in transitions(tz, start, end))
    assert got == reference.probe_transitions(tz, year)


def test_oracle_sees_sydney_spring_forward_gap():
    # The oracle itself: 30 2 * * * on 2026-10-04 (02:30 does not exist) fires at 03:00 AEDT.
    from schedules.cronexpr import CronExpr

    start = int(datetime(2026, 10, 3, 12, tzinfo=UTC).timestamp())
    fires = reference.cron_fires(CronExpr.parse("30 2 * * *"), "Australia/Sydney", start, start + 6 * 3600,
                                 gap="shift", repeat="first")
    assert fires == [int(datetime(2026, 10, 3, 16, tzinfo=UTC).timestamp())]

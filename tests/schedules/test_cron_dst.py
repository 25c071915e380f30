"""Named DST cases with exact instants, worked out by hand from the rules in schedules.cron.

Each expected instant is derived from the zone's offsets (noted per block), not copied
from the implementation's output.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from schedules.cron import CronTrigger, GapPolicy, RepeatPolicy
from schedules.dst import dst_effects
from schedules.oneoff import AtTrigger
from schedules.windows import Window, WindowsTrigger
from schedules.zones import UnknownTimezone, is_valid_timezone, transitions, zone

UTC = timezone.utc


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires_on_local_day(trigger, tz: str, day: date) -> list[datetime]:
    """The trigger's fires whose local date in ``tz`` is ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=1)
    fires = trigger.fires_between(start, start + timedelta(days=3))
    return [f for f in fires if f.astimezone(ZoneInfo(tz)).date() == day]


SYD, NYC, LON = "Australia/Sydney", "America/New_York", "Europe/London"
LHI, CHA, SCL = "Australia/Lord_Howe", "Pacific/Chatham", "America/Santiago"
DUB, CAS = "Europe/Dublin", "Africa/Casablanca"

# (expr, zone, local day, overrides, expected UTC instants)
CASES = {
    # Sydney AEST +10 / AEDT +11. Spring forward 2026-10-04 02:00 -> 03:00 (2026-10-03T16:00Z).
    "spring_forward_fixed_time_in_gap_shifts_to_gap_end": ("30 2 * * *", SYD, "2026-10-04", {}, ["2026-10-03T16:00"]),
    "spring_forward_fixed_time_at_gap_start_shifts": ("0 2 * * *", SYD, "2026-10-04", {}, ["2026-10-03T16:00"]),
    "spring_forward_fixed_time_at_gap_end_unaffected": ("0 3 * * *", SYD, "2026-10-04", {}, ["2026-10-03T16:00"]),
    "spring_forward_shift_coalesces_with_regular_fire": (
        "0,30 2,3 * * *", SYD, "2026-10-04", {}, ["2026-10-03T16:00", "2026-10-03T16:30"]),
    "spring_forward_gap_skip_override_drops_fire": ("30 2 * * *", SYD, "2026-10-04", {"gap": "skip"}, []),
    "spring_forward_wildcard_skips_gap": ("*/30 2 * * *", SYD, "2026-10-04", {}, []),
    "spring_forward_wildcard_gap_shift_override_fires_once": (
        "*/30 2 * * *", SYD, "2026-10-04", {"gap": "shift"}, ["2026-10-03T16:00"]),
    "spring_forward_sunday_entry_shifts": ("30 2 * * 0", SYD, "2026-10-04", {}, ["2026-10-03T16:00"]),
    "spring_forward_saturday_entry_not_on_sunday": ("30 2 * * sat", SYD, "2026-10-04", {}, []),
    "spring_forward_day_of_month_entry_shifts": ("30 2 4 10 *", SYD, "2026-10-04", {}, ["2026-10-03T16:00"]),
    "spring_forward_other_day_of_month_not_fired": ("30 2 3 10 *", SYD, "2026-10-04", {}, []),
    "spring_forward_dom_or_dow_matches_by_dom": ("30 2 4 10 sat", SYD, "2026-10-04", {}, ["2026-10-03T16:00"]),
    # Sydney fall back 2026-04-05 03:00 AEDT -> 02:00 AEST (2026-04-04T16:00Z): 02:xx twice.
    "fall_back_fixed_time_fires_first_occurrence_only": ("30 2 * * *", SYD, "2026-04-05", {}, ["2026-04-04T15:30"]),
    "fall_back_repeat_both_override_fires_twice": (
        "30 2 * * *", SYD, "2026-04-05", {"repeat": "both"}, ["2026-04-04T15:30", "2026-04-04T16:30"]),
    "fall_back_fixed_time_at_repeat_start_fires_once": ("0 2 * * *", SYD, "2026-04-05", {}, ["2026-04-04T15:00"]),
    "fall_back_fixed_time_at_repeat_end_unaffected": ("0 3 * * *", SYD, "2026-04-05", {}, ["2026-04-04T17:00"]),
    "fall_back_wildcard_fires_in_both_hours": (
        "*/30 2 * * *", SYD, "2026-04-05", {},
        ["2026-04-04T15:00", "2026-04-04T15:30", "2026-04-04T16:00", "2026-04-04T16:30"]),
    "fall_back_wildcard_repeat_first_override": (
        "*/30 2 * * *", SYD, "2026-04-05", {"repeat": "first"}, ["2026-04-04T15:00", "2026-04-04T15:30"]),
    "fall_back_sunday_entry_fires_once": ("30 2 * * 0", SYD, "2026-04-05", {}, ["2026-04-04T15:30"]),
    "fall_back_2027_fixed_time_fires_first_occurrence_only": (
        "30 2 * * *", SYD, "2027-04-04", {}, ["2027-04-03T15:30"]),
    # New York EST -5 / EDT -4. 2026-03-08 02:00 -> 03:00 (07:00Z); 2026-11-01 02:00 -> 01:00 (06:00Z).
    "new_york_spring_forward_fixed_time_shifts": ("30 2 * * *", NYC, "2026-03-08", {}, ["2026-03-08T07:00"]),
    "new_york_spring_forward_0300_unaffected": ("0 3 * * *", NYC, "2026-03-08", {}, ["2026-03-08T07:00"]),
    "new_york_fall_back_fixed_time_first_occurrence": ("30 1 * * *", NYC, "2026-11-01", {}, ["2026-11-01T05:30"]),
    "new_york_fall_back_repeat_both": (
        "30 1 * * *", NYC, "2026-11-01", {"repeat": "both"}, ["2026-11-01T05:30", "2026-11-01T06:30"]),
    # London GMT +0 / BST +1. 2026-03-29 01:00 -> 02:00 (01:00Z); 2026-10-25 02:00 -> 01:00 (01:00Z).
    "london_spring_forward_fixed_time_shifts": ("30 1 * * *", LON, "2026-03-29", {}, ["2026-03-29T01:00"]),
    "london_fall_back_fixed_time_first_occurrence": ("30 1 * * *", LON, "2026-10-25", {}, ["2026-10-25T00:30"]),
    "london_fall_back_wildcard_both_hours": (
        "*/30 1 * * *", LON, "2026-10-25", {},
        ["2026-10-25T00:00", "2026-10-25T00:30", "2026-10-25T01:00", "2026-10-25T01:30"]),
    # Lord Howe +10:30 / +11, 30-minute shifts. 2026-10-04 02:00 -> 02:30 (2026-10-03T15:30Z);
    # 2026-04-05 02:00 -> 01:30 (2026-04-04T15:00Z), 01:30-02:00 twice.
    "lord_howe_half_hour_gap_fixed_time_shifts": ("15 2 * * *", LHI, "2026-10-04", {}, ["2026-10-03T15:30"]),
    "lord_howe_half_hour_gap_end_unaffected": ("30 2 * * *", LHI, "2026-10-04", {}, ["2026-10-03T15:30"]),
    "lord_howe_half_hour_gap_wildcard_skips": (
        "*/15 2 * * *", LHI, "2026-10-04", {}, ["2026-10-03T15:30", "2026-10-03T15:45"]),
    "lord_howe_half_hour_repeat_fixed_first_occurrence": ("45 1 * * *", LHI, "2026-04-05", {}, ["2026-04-04T14:45"]),
    "lord_howe_half_hour_repeat_both": (
        "45 1 * * *", LHI, "2026-04-05", {"repeat": "both"}, ["2026-04-04T14:45", "2026-04-04T15:15"]),
    "lord_howe_half_hour_repeat_wildcard": (
        "*/15 1 * * *", LHI, "2026-04-05", {},
        ["2026-04-04T14:00", "2026-04-04T14:15", "2026-04-04T14:30", "2026-04-04T14:45",
         "2026-04-04T15:00", "2026-04-04T15:15"]),
    # Chatham +12:45 / +13:45, transitions at 02:45 / 03:45 wall time.
    # 2026-09-27 02:45 -> 03:45 (2026-09-26T14:00Z); 2026-04-05 03:45 -> 02:45 (2026-04-04T14:00Z).
    "chatham_gap_at_0245_fixed_time_shifts": ("0 3 * * *", CHA, "2026-09-27", {}, ["2026-09-26T14:00"]),
    "chatham_gap_start_0245_shifts": ("45 2 * * *", CHA, "2026-09-27", {}, ["2026-09-26T14:00"]),
    "chatham_before_gap_unaffected": ("30 2 * * *", CHA, "2026-09-27", {}, ["2026-09-26T13:45"]),
    "chatham_after_gap_unaffected": ("0 4 * * *", CHA, "2026-09-27", {}, ["2026-09-26T14:15"]),
    "chatham_repeat_fixed_first_occurrence": ("0 3 * * *", CHA, "2026-04-05", {}, ["2026-04-04T13:15"]),
    "chatham_repeat_both": (
        "0 3 * * *", CHA, "2026-04-05", {"repeat": "both"}, ["2026-04-04T13:15", "2026-04-04T14:15"]),
    # Santiago -4 / -3, transitions at midnight. 2026-09-06 has no 00:00-01:00 (04:00Z);
    # 2026-04-05 00:00 -> 2026-04-04 23:00 (03:00Z): Saturday's 23:xx happens twice.
    "santiago_midnight_gap_fixed_time_shifts": ("0 0 * * *", SCL, "2026-09-06", {}, ["2026-09-06T04:00"]),
    "santiago_midnight_gap_half_past_shifts": ("30 0 * * *", SCL, "2026-09-06", {}, ["2026-09-06T04:00"]),
    "santiago_gap_end_coalesces": ("0 1 * * *", SCL, "2026-09-06", {}, ["2026-09-06T04:00"]),
    "santiago_gap_day_of_month_is_nonexistent_wall_date": ("30 0 6 9 *", SCL, "2026-09-06", {}, ["2026-09-06T04:00"]),
    "santiago_gap_sunday_entry_shifts": ("30 0 * * 0", SCL, "2026-09-06", {}, ["2026-09-06T04:00"]),
    "santiago_gap_wildcard_skips": ("*/30 0 * * *", SCL, "2026-09-06", {}, []),
    "santiago_repeat_fixed_first_occurrence": ("30 23 * * *", SCL, "2026-04-04", {}, ["2026-04-05T02:30"]),
    "santiago_repeat_both": (
        "30 23 * * *", SCL, "2026-04-04", {"repeat": "both"}, ["2026-04-05T02:30", "2026-04-05T03:30"]),
    "santiago_repeat_saturday_entry_fires_once": ("30 23 * * 6", SCL, "2026-04-04", {}, ["2026-04-05T02:30"]),
    # Dublin: "negative DST" (winter is flagged), offsets +0 / +1 exactly as London.
    "dublin_negative_dst_spring_forward_shifts": ("30 1 * * *", DUB, "2026-03-29", {}, ["2026-03-29T01:00"]),
    "dublin_negative_dst_fall_back_first_occurrence": ("30 1 * * *", DUB, "2026-10-25", {}, ["2026-10-25T00:30"]),
    # Casablanca +1 / +0 (Ramadan): 2026-02-15 03:00 -> 02:00 (02:00Z); 2026-03-22 02:00 -> 03:00 (02:00Z).
    "casablanca_negative_dst_repeat_first_occurrence": ("30 2 * * *", CAS, "2026-02-15", {}, ["2026-02-15T01:30"]),
    "casablanca_negative_dst_repeat_both": (
        "30 2 * * *", CAS, "2026-02-15", {"repeat": "both"}, ["2026-02-15T01:30", "2026-02-15T02:30"]),
    "casablanca_negative_dst_gap_shifts": ("30 2 * * *", CAS, "2026-03-22", {}, ["2026-03-22T02:00"]),
    # Troll +0 -> +2 on 2026-03-29 (01:00Z): two wall hours skipped, one fire for both.
    "troll_two_hour_gap_coalesces_two_matches": (
        "30 1,2 * * *", "Antarctica/Troll", "2026-03-29", {}, ["2026-03-29T01:00"]),
    # UTC: no transitions, the naive wall clock.
    "utc_fixed_time_plain": ("30 2 * * *", "UTC", "2026-10-04", {}, ["2026-10-04T02:30"]),
}


@pytest.mark.parametrize("expr, tz, day, overrides, expected", CASES.values(), ids=CASES.keys())
def test_named_dst_case(expr, tz, day, overrides, expected):
    trigger = CronTrigger(expr, timezone=tz, **overrides)
    assert fires_on_local_day(trigger, tz, date.fromisoformat(day)) == [utc(e) for e in expected]


@pytest.mark.parametrize(
    "expr, tz, day, expected_count",
    [
        ("*/30 * * * *", SYD, "2026-04-05", 50),
        ("*/30 * * * *", SYD, "2026-10-04", 46),
        ("*/30 * * * *", "UTC", "2026-10-04", 48),
        ("*/15 * * * *", LHI, "2026-10-04", 94),
        ("*/15 * * * *", LHI, "2026-04-05", 98),
    ],
    ids=["fall_back_day_has_50_half_hours", "spring_forward_day_has_46_half_hours", "utc_day_has_48_half_hours",
         "lord_howe_spring_day_loses_two_quarters", "lord_howe_fall_day_gains_two_quarters"],
)
def test_wildcard_fire_count_follows_real_time(expr, tz, day, expected_count):
    trigger = CronTrigger(expr, timezone=tz)
    assert len(fires_on_local_day(trigger, tz, date.fromisoformat(day))) == expected_count


def test_apia_skipped_day_fires_once_for_the_missing_date():
    # 2011-12-29 24:00 (-10) became 2011-12-31 00:00 (+14) at 2011-12-30T10:00Z.
    trigger = CronTrigger("30 2 * * *", timezone="Pacific/Apia")
    fires = list(trigger.fires_between(utc("2011-12-29T00:00"), utc("2011-12-31T00:00")))
    assert fires == [utc("2011-12-29T12:30"), utc("2011-12-30T10:00"), utc("2011-12-30T12:30")]


def test_defaults_depend_on_wildcard():
    assert (CronTrigger("*/5 * * * *").gap, CronTrigger("*/5 * * * *").repeat) == (GapPolicy.SKIP, RepeatPolicy.BOTH)
    assert (CronTrigger("5 * * * *").gap, CronTrigger("5 * * * *").repeat) == (GapPolicy.SKIP, RepeatPolicy.BOTH)
    assert (CronTrigger("0 9 * * *").gap, CronTrigger("0 9 * * *").repeat) == (GapPolicy.SHIFT, RepeatPolicy.FIRST)


def test_impossible_date_returns_none_within_horizon():
    assert CronTrigger("0 0 30 2 *", timezone=SYD).next_fire_after(utc("2026-01-01T00:00")) is None


def test_leap_day_found_eight_years_ahead():
    fire = CronTrigger("0 0 29 2 *").next_fire_after(utc("2096-03-01T00:00"))
    assert fire == utc("2104-02-29T00:00")


def test_naive_datetime_is_rejected():
    with pytest.raises(ValueError):
        CronTrigger("0 9 * * *").next_fire_after(datetime(2026, 1, 1))


def test_next_fire_is_strictly_after_and_returned_in_utc():
    trigger = CronTrigger("0 9 * * *", timezone=SYD)
    at_fire = datetime(2026, 6, 1, 9, tzinfo=ZoneInfo(SYD))
    fire = trigger.next_fire_after(at_fire)
    assert fire == utc("2026-06-01T23:00") and fire.tzinfo is UTC


def test_bad_policy_and_zone_are_rejected():
    with pytest.raises(ValueError):
        CronTrigger("0 9 * * *", gap="sometimes")
    with pytest.raises(UnknownTimezone) as caught:
        CronTrigger("0 9 * * *", timezone="Mars/Olympus")
    assert caught.value.name == "Mars/Olympus"


def test_describe_mentions_expression_zone_and_overrides():
    assert CronTrigger("30 2 * * *", timezone=SYD).describe() == "cron '30 2 * * *' Australia/Sydney"
    assert CronTrigger("30 2 * * *", timezone=SYD, gap="skip").describe().endswith("gap=skip")


# -- guards --------------------------------------------------------------------------------
def test_min_gap_shrinks_across_spring_forward():
    # 01:59 AEST -> (02:30 shifted to) 03:00 AEDT is one real minute on 2026-10-04.
    trigger = CronTrigger("30,59 1,2 * * *", timezone=SYD)
    assert trigger.min_gap_s(utc("2026-01-01T00:00"), utc("2027-01-01T00:00")) == 60.0
    assert trigger.min_gap_s(utc("2026-05-01T00:00"), utc("2026-06-01T00:00")) == 29 * 60.0


@pytest.mark.parametrize(
    "expr, tz, expected_s",
    [
        ("*/15 * * * *", "UTC", 900),
        ("0 9 * * mon-fri", SYD, 86400),
        ("0 0,23 * * *", "UTC", 3600),
        ("0 0 1 * *", NYC, 28 * 86400),  # Feb 1 -> Mar 1; the Mar 8 shift lies in a 31-day gap
        ("30 2 * * 0", SYD, 7 * 86400 - 1800),  # 02:30 AEST -> next Sunday 03:00 AEDT (= 02:00 AEST)
    ],
    ids=["quarter_hours", "weekday_mornings", "midnight_and_2300_one_hour", "monthly_shortest_february",
         "weekly_entry_loses_an_hour_over_spring_forward"],
)
def test_min_gap_over_a_year_equals_enumeration(expr, tz, expected_s):
    trigger = CronTrigger(expr, timezone=tz)
    start, end = utc("2026-01-01T00:00"), utc("2027-01-01T00:00")
    fires = list(trigger.fires_between(start, end))
    enumerated = min((b - a).total_seconds() for a, b in zip(fires, fires[1:]))
    assert enumerated == expected_s
    assert trigger.min_gap_s(start, end) == expected_s


def test_min_gap_is_none_with_fewer_than_two_fires():
    trigger = CronTrigger("0 9 1 1 *")
    assert trigger.min_gap_s(utc("2026-01-01T00:00"), utc("2026-12-31T00:00")) is None


@pytest.mark.parametrize(
    "expr, tz, expected",
    [
        ("*/5 * * * *", "UTC", 12.0),
        ("*/5 * * * *", SYD, 12.0),
        ("0 9 * * *", SYD, 1.0),
        ("30 2,3 * * *", SYD, 2.0),
        ("30,45 1,2 * * *", LHI, 5.0),
    ],
    ids=["utc_counts_minute_values", "whole_hour_shifts_never_double",
         "one_wall_time_a_day_stays_one", "gap_shift_adds_the_gap_end_fire", "half_hour_shift_can_double"],
)
def test_peak_runs_per_hour(expr, tz, expected):
    assert CronTrigger(expr, timezone=tz).peak_runs_per_hour() == expected


def test_half_hour_shift_really_doubles_a_real_hour():
    # Lord Howe spring: 01:30, 01:45 (+10:30) then 02:30, 02:45 (+11) lie within one real hour.
    trigger = CronTrigger("30,45 1,2 * * *", timezone=LHI)
    fires = list(trigger.fires_between(utc("2026-10-03T14:59"), utc("2026-10-03T15:59")))
    assert len(fires) == 4 <= trigger.peak_runs_per_hour()


# -- zones -----------------------------------------------------------------------------------
def test_zone_lookup_and_validation():
    assert zone(SYD) is zone(SYD)
    assert is_valid_timezone(SYD) and not is_valid_timezone("Nowhere/Special") and not is_valid_timezone("")


@pytest.mark.parametrize(
    "tz, year, expected",
    [
        (SYD, 2026, [("2026-04-04T16:00", -3600), ("2026-10-03T16:00", 3600)]),
        (DUB, 2026, [("2026-03-29T01:00", 3600), ("2026-10-25T01:00", -3600)]),
        (LHI, 2026, [("2026-04-04T15:00", -1800), ("2026-10-03T15:30", 1800)]),
        ("Pacific/Apia", 2011, [("2011-04-02T14:00", -3600), ("2011-09-24T14:00", 3600), ("2011-12-30T10:00", 86400)]),
        ("UTC", 2026, []),
    ],
    ids=["sydney_southern_hemisphere", "dublin_negative_dst_judged_by_offset", "lord_howe_half_hours",
         "apia_skipped_day_is_a_24h_gap", "utc_has_none"],
)
def test_transitions_found_to_the_second(tz, year, expected):
    found = transitions(tz, utc(f"{year}-01-01T00:00"), utc(f"{year + 1}-01-01T00:00"))
    assert [(t.at, t.offset_after_s - t.offset_before_s) for t in found] == [(utc(a), d) for a, d in expected]
    assert [t.kind for t in found] == ["gap" if d > 0 else "repeat" for _, d in expected]


# -- dst_effects -----------------------------------------------------------------------------
def _effect(trigger, day: str):
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(days=1)
    effects = dst_effects(trigger, start, start + timedelta(days=2))
    assert len(effects) == 1
    return effects[0]


@pytest.mark.parametrize(
    "expr, tz, day, overrides, word",
    [
        ("30 2 * * *", SYD, "2026-10-04", {}, "shifted"),
        ("30 2 * * *", SYD, "2027-04-04", {}, "unaffected"),
        ("30 2 * * *", SYD, "2026-04-05", {"repeat": "both"}, "fires_twice"),
        ("*/30 * * * *", SYD, "2026-04-05", {}, "fires_twice"),
        ("*/30 * * * *", SYD, "2026-10-04", {}, "skipped"),
        ("0 9 * * *", SYD, "2026-10-04", {}, "unaffected"),
        ("30 2 * * *", NYC, "2026-03-08", {}, "shifted"),
        ("30 1 * * *", LON, "2026-03-29", {"gap": "skip"}, "skipped"),
        ("15 2 * * *", LHI, "2026-10-04", {}, "shifted"),
        ("45 1 * * *", LHI, "2026-04-05", {"repeat": "both"}, "fires_twice"),
        ("0 3 * * *", CHA, "2026-09-27", {}, "shifted"),
        ("0 0 * * *", SCL, "2026-09-06", {}, "shifted"),
        ("30 1 * * *", DUB, "2026-10-25", {"repeat": "both"}, "fires_twice"),
        ("30 2 * * *", CAS, "2026-03-22", {}, "shifted"),
        ("30 2 * * *", "Pacific/Apia", "2011-12-30", {}, "shifted"),
    ],
    ids=["sydney_gap_fixed_shifted", "sydney_repeat_fixed_fires_once", "sydney_repeat_both_fires_twice",
         "sydney_repeat_wildcard_fires_twice", "sydney_gap_wildcard_skipped", "sydney_outside_gap_unaffected",
         "new_york_gap_shifted", "london_gap_skip_override_skipped", "lord_howe_half_hour_gap_shifted",
         "lord_howe_half_hour_repeat_both", "chatham_0245_gap_shifted", "santiago_midnight_gap_shifted",
         "dublin_negative_dst_repeat_both", "casablanca_negative_dst_gap_shifted", "apia_skipped_day_shifted"],
)
def test_dst_effect_word(expr, tz, day, overrides, word):
    assert _effect(CronTrigger(expr, timezone=tz, **overrides), day).effect == word


def test_dst_effect_details_read_as_specified():
    shifted = _effect(CronTrigger("30 2 * * *", timezone=SYD), "2026-10-04")
    assert shifted.detail == "02:30 does not exist on 2026-10-04; fires once at 03:00 AEDT (2026-10-03T16:00:00Z)"
    assert shifted.fires == (utc("2026-10-03T16:00"),)
    once = _effect(CronTrigger("30 2 * * *", timezone=SYD), "2027-04-04")
    assert once.detail == "02:30 happens twice on 2027-04-04; fires at 02:30 AEDT only"
    twice = _effect(CronTrigger("*/30 * * * *", timezone=SYD), "2026-04-05")
    assert twice.detail.startswith("fires at 02:00 and 02:30 in both repeated hours")
    assert len(twice.fires) == 50


def test_dst_effects_one_per_transition_and_none_for_utc():
    year = (utc("2026-01-01T00:00"), utc("2027-01-01T00:00"))
    assert [e.transition.kind for e in dst_effects(CronTrigger("0 9 * * *", timezone=SYD), *year)] == ["repeat", "gap"]
    assert dst_effects(CronTrigger("0 9 * * *"), *year) == []


def test_dst_effects_for_windows_and_one_offs():
    night = WindowsTrigger([Window(60, hours=frozenset({2})), Window(3600)], timezone=SYD)
    assert _effect(night, "2026-10-04").effect == "skipped"
    assert _effect(night, "2026-04-05").effect == "fires_twice"
    daytime = WindowsTrigger([Window(60, hours=frozenset(range(9, 17))), Window(3600)], timezone=SYD)
    assert _effect(daytime, "2026-10-04").effect == "unaffected"
    in_gap = AtTrigger.from_local(datetime(2026, 10, 4, 2, 30), timezone=SYD)
    effect = _effect(in_gap, "2026-10-04")
    assert (effect.effect, effect.fires) == ("shifted", (utc("2026-10-03T16:00"),))

"""Cron expression parsing, day matching and the wall-clock search."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from schedules.cronexpr import CronExpr, CronSyntaxError, parse_field


def wall_s(text: str) -> int:
    """Naive wall time as epoch seconds (the search's currency)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


@pytest.mark.parametrize(
    "text, field, expected",
    [
        ("*", "hour", set(range(24))),
        ("*/15", "minute", {0, 15, 30, 45}),
        ("5", "minute", {5}),
        ("1,3,5", "hour", {1, 3, 5}),
        ("9-17", "hour", set(range(9, 18))),
        ("0-30/10", "minute", {0, 10, 20, 30}),
        ("50/3", "minute", {50, 53, 56, 59}),
        ("1-5,10-12/2", "day_of_month", {1, 2, 3, 4, 5, 10, 12}),
        ("jan,MAR,Dec", "month", {1, 3, 12}),
        ("mar-may", "month", {3, 4, 5}),
        ("mon-fri", "day_of_week", {1, 2, 3, 4, 5}),
        ("SUN", "day_of_week", {0}),
        ("7", "day_of_week", {0}),
        ("5-7", "day_of_week", {5, 6, 0}),
        ("*/100", "minute", {0}),
    ],
    ids=["star_is_whole_range", "star_step", "single_value", "list", "range", "range_with_step",
         "start_with_step_runs_to_max", "list_of_ranges", "month_names_any_case", "month_name_range",
         "weekday_name_range", "weekday_name_upper_case", "seven_is_sunday", "range_through_seven_folds_to_sunday",
         "step_beyond_range_keeps_start"],
)
def test_parse_field_valid_forms(text, field, expected):
    assert parse_field(text, field) == frozenset(expected)


@pytest.mark.parametrize(
    "text, field",
    [
        ("* * * *", "cron"),
        ("* * * * * *", "cron"),
        ("", "cron"),
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day_of_month"),
        ("* * 32 * *", "day_of_month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day_of_week"),
        ("*/0 * * * *", "minute"),
        ("* 1-10/0 * * *", "hour"),
        ("* * * foo *", "month"),
        ("* * * * funday", "day_of_week"),
        ("* * * mon *", "month"),
        ("30-10 * * * *", "minute"),
        ("* * * * fri-mon", "day_of_week"),
        ("1,,2 * * * *", "minute"),
        ("* 1- * * *", "hour"),
        ("x * * * *", "minute"),
        ("* */x * * *", "hour"),
    ],
    ids=["too_few_fields", "too_many_fields", "empty_text", "minute_out_of_range", "hour_out_of_range",
         "day_zero", "day_32", "month_13", "weekday_8", "step_zero", "range_step_zero", "bad_month_name",
         "bad_weekday_name", "weekday_name_in_month_field", "reversed_minute_range", "reversed_weekday_range",
         "empty_list_item", "half_open_range", "not_a_number", "step_not_a_number"],
)
def test_parse_errors_name_the_field(text, field):
    with pytest.raises(CronSyntaxError) as caught:
        CronExpr.parse(text)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_parse_error_carries_value_and_reason():
    with pytest.raises(CronSyntaxError) as caught:
        CronExpr.parse("0 25 * * *")
    assert (caught.value.value, caught.value.reason) == ("25", "25 is outside 0-23")


def test_parse_records_flags_and_source():
    expr = CronExpr.parse("  */5   9-17 * * mon-fri ")
    assert expr.source == "*/5 9-17 * * mon-fri"
    assert (expr.is_wildcard, expr.dom_restricted, expr.dow_restricted) == (True, False, True)
    fixed = CronExpr.parse("30 2 1 * *")
    assert (fixed.is_wildcard, fixed.dom_restricted, fixed.dow_restricted) == (False, True, False)
    assert CronExpr.parse("0 */2 * * *").is_wildcard
    assert CronExpr.parse("0 9 * * 1").days_of_week == CronExpr.parse("0 9 * * mon").days_of_week


def test_parse_field_rejects_unknown_field_name():
    with pytest.raises(ValueError):
        parse_field("1", "second")


# -- day matching ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, day, expected",
    [
        ("0 0 13 * fri", date(2026, 2, 13), True),  # Friday the 13th: both
        ("0 0 13 * fri", date(2026, 2, 6), True),  # a Friday: dow matches, OR
        ("0 0 13 * fri", date(2026, 1, 13), True),  # a Tuesday the 13th: dom matches, OR
        ("0 0 13 * fri", date(2026, 2, 7), False),  # neither
        ("0 0 */2 * fri", date(2026, 2, 6), False),  # dom field begins with '*': AND; Feb 6 is even
        ("0 0 */2 * fri", date(2026, 2, 13), True),  # odd day and a Friday
        ("0 0 * * fri", date(2026, 2, 13), True),
        ("0 0 1 * *", date(2026, 2, 2), False),
        ("0 0 29 2 *", date(2028, 2, 29), True),
        ("0 0 * jun *", date(2026, 5, 31), False),
    ],
    ids=["both_day_fields_match", "vixie_or_by_weekday", "vixie_or_by_day_of_month", "vixie_or_neither",
         "star_step_dom_means_and_fails", "star_step_dom_means_and_passes", "weekday_only",
         "day_of_month_only", "leap_day", "wrong_month"],
)
def test_matches_day_uses_vixie_rule(text, day, expected):
    assert CronExpr.parse(text).matches_day(day) is expected


# -- wall-clock search -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, low, expected",
    [
        ("30 2 * * *", "2026-03-03T02:30:00", "2026-03-03T02:30:00"),
        ("30 2 * * *", "2026-03-03T02:30:01", "2026-03-04T02:30:00"),
        ("*/15 * * * *", "2026-03-03T23:50:00", "2026-03-04T00:00:00"),
        ("0 9 * * mon-fri", "2026-03-06T09:00:01", "2026-03-09T09:00:00"),  # Friday -> Monday
        ("0 0 1 1 *", "2026-03-03T00:00:00", "2027-01-01T00:00:00"),
        ("0 0 31 * *", "2026-04-01T00:00:00", "2026-05-31T00:00:00"),  # April has no 31st
        ("0 0 29 2 *", "2097-01-01T00:00:00", "2104-02-29T00:00:00"),  # 2100 is not leap
        ("59 23 31 12 *", "2026-12-31T23:59:00", "2026-12-31T23:59:00"),
    ],
    ids=["exact_match_included", "just_after_goes_to_tomorrow", "crosses_midnight", "skips_weekend",
         "yearly_wraps_year", "month_without_day_skipped", "leap_day_skips_2100", "last_minute_of_year"],
)
def test_next_wall_match(text, low, expected):
    assert CronExpr.parse(text).next_wall_match_s(wall_s(low), wall_s("2200-01-01T00:00:00")) == wall_s(expected)


def test_next_wall_match_respects_upper_bound_and_impossible_dates():
    expr = CronExpr.parse("30 2 * * *")
    assert expr.next_wall_match_s(wall_s("2026-03-03T03:00:00"), wall_s("2026-03-04T02:30:00")) is None
    assert expr.has_wall_match(wall_s("2026-03-03T02:00:00"), wall_s("2026-03-03T03:00:00"))
    never = CronExpr.parse("0 0 30 2 *")
    assert never.next_wall_match_s(wall_s("2026-01-01T00:00:00"), wall_s("2099-01-01T00:00:00")) is None


def test_next_wall_match_agrees_with_minute_scan():
    # A mixed expression against a plain minute-by-minute scan over ten days.
    expr = CronExpr.parse("*/20 1,13 1-10,15 * tue")
    low, high = wall_s("2026-02-27T00:00:00"), wall_s("2026-03-09T00:00:00")
    scanned = [w for w in range(low, high, 60) if _wall_matches(expr, w)]
    searched, cursor = [], low
    while (found := expr.next_wall_match_s(cursor, high)) is not None:
        searched.append(found)
        cursor = found + 1
    assert searched == scanned and len(scanned) > 10


def _wall_matches(expr: CronExpr, wall: int) -> bool:
    moment = datetime.fromtimestamp(wall, timezone.utc)
    return moment.minute in expr.minutes and moment.hour in expr.hours and expr.matches_day(moment.date())


@pytest.mark.parametrize(
    "text, first, last, expected_s",
    [
        ("*/15 * * * *", date(2026, 1, 1), date(2026, 1, 2), 900),
        ("0 0,23 * * *", date(2026, 1, 1), date(2026, 1, 3), 3600),
        ("0 9 * * mon", date(2026, 1, 1), date(2026, 3, 1), 7 * 86400),
        ("0 9 1 * *", date(2026, 1, 1), date(2026, 12, 31), 28 * 86400),
        ("0 9 1 * *", date(2026, 1, 1), date(2026, 1, 31), None),
        ("0,50 9 * * *", date(2026, 1, 1), date(2026, 1, 1), 3000),
    ],
    ids=["quarter_hours", "late_and_midnight_give_one_hour", "weekly", "monthly_february_shortest",
         "one_fire_no_gap", "single_day_intra_day_gap"],
)
def test_naive_min_gap(text, first, last, expected_s):
    assert CronExpr.parse(text).naive_min_gap_s(first, last) == expected_s

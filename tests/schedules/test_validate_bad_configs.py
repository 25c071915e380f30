"""Bad schedules, one row each: every problem is reported, naming the entry and the field.

Each row lists the exact (entry, field) of every problem expected, in order, with a
fragment of the message; the count of problems is therefore checked too.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from schedules.errors import ScheduleConfigError
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
TASKS = {"etl.poll", "etl.report"}


def ok(**extra):
    """A valid entry, changed by ``extra`` (a value of None removes the key)."""
    entry = {"task": "etl.poll", "every": 60, **extra}
    return {key: value for key, value in entry.items() if value is not None}


# (id, schedule, settings overrides, [(entry, field, message fragment), ...])
CASES = [
    # -- keys --------------------------------------------------------------------------------
    ("unknown_key_suggests_the_close_name", {"a": ok(expirse=5)}, {},
     [("a", "expirse", "unknown key 'expirse'; did you mean 'expires'?")]),
    ("unknown_key_without_close_name_has_no_hint", {"a": ok(zzz=1)}, {},
     [("a", "zzz", "unknown key 'zzz'")]),
    ("task_is_required", {"a": ok(task=None)}, {}, [("a", "task", "is required")]),
    ("task_must_be_registered_with_hint", {"a": ok(task="etl.pol")}, {},
     [("a", "task", "unknown task 'etl.pol'; did you mean 'etl.poll'?")]),
    ("task_unknown_without_hint", {"a": ok(task="billing.run")}, {}, [("a", "task", "unknown task 'billing.run'")]),
    ("task_empty_string_refused", {"a": ok(task="  ")}, {}, [("a", "task", "must not be empty")]),
    ("task_must_be_a_string", {"a": ok(task=5)}, {}, [("a", "task", "expected a string, got int 5")]),
    # -- schedule kind -----------------------------------------------------------------------
    ("schedule_kind_missing", {"a": ok(every=None)}, {},
     [("a", "schedule", "needs exactly one of every, cron, at or windows; none given")]),
    ("two_schedule_kinds_refused", {"a": ok(cron="0 3 * * *")}, {},
     [("a", "schedule", "got every and cron")]),
    ("three_schedule_kinds_refused", {"a": ok(cron="0 3 * * *", at="2026-07-01T00:00")}, {},
     [("a", "schedule", "got every and cron and at")]),
    # -- every -------------------------------------------------------------------------------
    ("every_below_minimum_interval", {"gtfs-rt-poll": ok(every=0.1)}, {},
     [("gtfs-rt-poll", "every", "0.1 s is below the minimum interval of 10 s")]),
    ("every_duration_string_below_minimum", {"a": ok(every="500ms")}, {},
     [("a", "every", "0.5 s is below the minimum interval of 10 s")]),
    ("every_below_raised_minimum", {"a": ok(every="1m")}, {"min_interval_s": 120},
     [("a", "every", "60 s is below the minimum interval of 120 s")]),
    ("every_zero_refused", {"a": ok(every=0)}, {}, [("a", "every", "must be greater than 0 seconds")]),
    ("every_negative_refused", {"a": ok(every=-5)}, {}, [("a", "every", "must be greater than 0 seconds")]),
    ("every_negative_string_is_not_a_duration", {"a": ok(every="-5s")}, {}, [("a", "every", "is not a duration")]),
    ("every_words_are_not_a_duration", {"a": ok(every="5 minutes")}, {}, [("a", "every", "is not a duration")]),
    ("every_units_must_be_largest_first", {"a": ok(every="30m1h")}, {}, [("a", "every", "largest first")]),
    ("every_boolean_refused", {"a": ok(every=True)}, {}, [("a", "every", "got a boolean")]),
    ("every_infinite_refused", {"a": ok(every=float("inf"))}, {}, [("a", "every", "finite")]),
    ("phase_negative_refused", {"a": ok(phase=-1)}, {}, [("a", "phase", "must not be negative")]),
    ("phase_only_with_every", {"a": ok(every=None, cron="0 3 * * *", phase=5)}, {},
     [("a", "phase", "only applies to every entries, not cron")]),
    # -- cron --------------------------------------------------------------------------------
    ("cron_needs_five_fields", {"a": ok(every=None, cron="* * * *")}, {},
     [("a", "cron", "expected 5 fields")]),
    ("cron_hour_24_out_of_range", {"a": ok(every=None, cron="0 24 * * *")}, {},
     [("a", "cron", "hour: 24 is outside 0-23")]),
    ("cron_minute_60_out_of_range", {"a": ok(every=None, cron="60 * * * *")}, {},
     [("a", "cron", "minute: 60 is outside 0-59")]),
    ("cron_day_of_month_0_out_of_range", {"a": ok(every=None, cron="0 0 0 * *")}, {},
     [("a", "cron", "day_of_month: 0 is outside 1-31")]),
    ("cron_step_zero_refused", {"a": ok(every=None, cron="*/0 * * * *")}, {},
     [("a", "cron", "minute: step 0")]),
    ("cron_bad_month_name", {"a": ok(every=None, cron="0 0 1 foo *")}, {},
     [("a", "cron", "month: unknown name 'foo'")]),
    ("cron_bad_weekday_name", {"a": ok(every=None, cron="0 0 * * funday")}, {},
     [("a", "cron", "day_of_week: unknown name 'funday'")]),
    ("cron_never_fires_feb_30", {"a": ok(every=None, cron="0 0 30 2 *")}, {},
     [("a", "cron", "never fires in the 8 years after 2026-06-01")]),
    ("cron_must_be_a_string", {"a": ok(every=None, cron=5)}, {}, [("a", "cron", "expected a string")]),
    ("cron_below_raised_minimum_interval", {"a": ok(every=None, cron="* * * * *")}, {"min_interval_s": 300},
     [("a", "cron", "fires as little as 60 s apart, below the minimum interval of 300 s")]),
    # -- timezone and dst --------------------------------------------------------------------
    ("timezone_unknown", {"a": ok(every=None, cron="0 3 * * *", timezone="Mars/Olympus")}, {},
     [("a", "timezone", "unknown time zone 'Mars/Olympus'")]),
    ("timezone_not_with_every", {"a": ok(timezone="Europe/Paris")}, {},
     [("a", "timezone", "only applies to at, cron or windows entries, not every")]),
    ("dst_not_with_every", {"a": ok(dst={"gap": "skip"})}, {},
     [("a", "dst", "only applies to at or cron entries, not every")]),
    ("dst_not_with_windows", {"a": ok(every=None, windows=[{"every": 60}], dst={"gap": "skip"})}, {},
     [("a", "dst", "not windows")]),
    ("dst_gap_value_unknown", {"a": ok(every=None, cron="0 3 * * *", dst={"gap": "jump"})}, {},
     [("a", "dst.gap", "expected one of shift, skip, got 'jump'")]),
    ("dst_unknown_key_suggests", {"a": ok(every=None, cron="0 3 * * *", dst={"gapp": "skip"})}, {},
     [("a", "dst.gapp", "did you mean 'gap'?")]),
    ("dst_must_be_a_mapping", {"a": ok(every=None, cron="0 3 * * *", dst="skip")}, {},
     [("a", "dst", "expected a mapping")]),
    ("at_refuses_repeat_both", {"a": ok(every=None, at="2026-10-04T02:30", dst={"repeat": "both"})}, {},
     [("a", "dst.repeat", "an at entry always uses first, got both")]),
    # -- at ----------------------------------------------------------------------------------
    ("at_not_iso", {"a": ok(every=None, at="next tuesday")}, {}, [("a", "at", "expected an ISO-8601 date-time")]),
    ("at_date_without_time", {"a": ok(every=None, at=date(2026, 7, 1))}, {}, [("a", "at", "got the date 2026-07-01")]),
    ("at_more_than_8_years_ahead", {"a": ok(every=None, at="2040-01-01T00:00:00+00:00")}, {},
     [("a", "at", "more than 8 years ahead")]),
    # -- windows -----------------------------------------------------------------------------
    ("windows_empty_list", {"a": ok(every=None, windows=[])}, {}, [("a", "windows", "non-empty list")]),
    ("windows_last_must_be_catch_all", {"a": ok(every=None, windows=[{"hours": "7-9", "every": 60}])}, {},
     [("a", "windows[0]", "the last window is the catch-all")]),
    ("windows_catch_all_only_last",
     {"a": ok(every=None, windows=[{"every": 60}, {"every": 600}])}, {},
     [("a", "windows[0]", "only the last window may omit both hours and days")]),
    ("windows_hours_out_of_range",
     {"a": ok(every=None, windows=[{"hours": "7-25", "every": 60}, {"every": 600}])}, {},
     [("a", "windows[0].hours", "25 is outside 0-23")]),
    ("windows_days_bad_name",
     {"a": ok(every=None, windows=[{"days": "mon-funday", "every": 60}, {"every": 600}])}, {},
     [("a", "windows[0].days", "unknown name 'funday'")]),
    ("windows_every_required",
     {"a": ok(every=None, windows=[{"hours": "7-9", "every": 60}, {"phase": 5}])}, {},
     [("a", "windows[1].every", "is required")]),
    ("windows_unknown_key_suggests",
     {"a": ok(every=None, windows=[{"hours": "7-9", "evry": 60}, {"every": 600}])}, {},
     [("a", "windows[0].evry", "did you mean 'every'?"), ("a", "windows[0].every", "is required")]),
    ("windows_item_must_be_a_mapping", {"a": ok(every=None, windows=["7-9", {"every": 600}])}, {},
     [("a", "windows[0]", "expected a mapping")]),
    # -- task arguments ----------------------------------------------------------------------
    ("args_must_be_a_list", {"a": ok(args="x")}, {}, [("a", "args", "expected a list, got a string 'x'")]),
    ("args_must_be_json", {"a": ok(args=[1, {2, 3}])}, {}, [("a", "args", "args[1] is set")]),
    ("args_nan_is_not_json", {"a": ok(args=[float("nan")])}, {}, [("a", "args", "args[0] is nan")]),
    ("kwargs_must_be_a_mapping", {"a": ok(kwargs=[1])}, {}, [("a", "kwargs", "expected a mapping, got a list")]),
    ("kwargs_keys_must_be_strings", {"a": ok(kwargs={1: "x"})}, {}, [("a", "kwargs", "JSON keys must be strings")]),
    ("kwargs_nested_datetime_is_not_json", {"a": ok(kwargs={"since": {"when": NOW}})}, {},
     [("a", "kwargs", "kwargs['since']['when'] is datetime")]),
    # -- other keys --------------------------------------------------------------------------
    ("expires_zero_refused", {"a": ok(expires=0)}, {}, [("a", "expires", "must be greater than 0 seconds")]),
    ("expires_negative_refused", {"a": ok(expires="-1s")}, {}, [("a", "expires", "is not a duration")]),
    ("enabled_must_be_boolean", {"a": ok(enabled="yes")}, {}, [("a", "enabled", "expected true or false, got 'yes'")]),
    ("queue_empty_refused", {"a": ok(queue="")}, {}, [("a", "queue", "must not be empty")]),
    ("description_must_be_a_string", {"a": ok(description=["x"])}, {}, [("a", "description", "expected a string")]),
    ("expected_runtime_positive", {"a": ok(expected_runtime=0)}, {}, [("a", "expected_runtime", "greater than 0")]),
    ("max_runs_per_hour_positive", {"a": ok(max_runs_per_hour=0)}, {}, [("a", "max_runs_per_hour", "greater than 0")]),
    ("max_runs_per_hour_whole_number", {"a": ok(max_runs_per_hour=1.5)}, {},
     [("a", "max_runs_per_hour", "expected a whole number, got 1.5")]),
    ("overlap_choice", {"a": ok(overlap="sometimes")}, {},
     [("a", "overlap", "expected one of allow, skip, buffer_one, got 'sometimes'")]),
    ("catchup_choice", {"a": ok(catchup="never")}, {}, [("a", "catchup", "expected one of skip, latest, all")]),
    ("lock_key_list_of_strings", {"a": ok(lock_key="id")}, {}, [("a", "lock_key", "expected a list of non-empty strings")]),
    ("lock_ttl_positive", {"a": ok(lock_ttl=0)}, {}, [("a", "lock_ttl", "greater than 0")]),
    ("time_limit_is_a_duration", {"a": ok(time_limit="fast")}, {}, [("a", "time_limit", "is not a duration")]),
    ("catchup_max_boolean_is_not_a_number", {"a": ok(catchup_max=True)}, {}, [("a", "catchup_max", "whole number")]),
    # -- names and shapes --------------------------------------------------------------------
    ("entry_must_be_a_mapping", {"a": "every 5s"}, {}, [("a", None, "expected a mapping of keys")]),
    ("entry_name_must_not_be_empty", {"": ok()}, {}, [("", "name", "must not be empty")]),
    ("entry_name_must_be_a_string", {5: ok()}, {}, [("5", "name", "must be a string, got int")]),
    ("yaml_boolean_name_gets_a_quoting_hint", {False: ok()}, {},
     [("False", "name", "got bool; YAML reads yes/no/on/off as booleans: quote the name")]),
    # -- several at once ---------------------------------------------------------------------
    ("every_problem_of_one_entry_reported", {"a": {"task": "", "every": 0, "expirse": 1}}, {},
     [("a", "task", "must not be empty"), ("a", "every", "greater than 0"), ("a", "expirse", "did you mean")]),
    ("every_bad_entry_reported_in_order",
     {"a": ok(every=1), "fine": ok(), "b": ok(cron="0 3 * * *"), "c": ok(task="nope", queue=3)}, {},
     [("a", "every", "below the minimum"), ("b", "schedule", "got every and cron"),
      ("c", "task", "unknown task 'nope'"), ("c", "queue", "expected a string")]),
]


@pytest.mark.parametrize(("raw", "overrides", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_reports_every_problem(raw, overrides, expected):
    settings = ScheduleSettings(**overrides)
    with pytest.raises(ScheduleConfigError) as caught:
        validate_schedule(raw, settings=settings, registered_tasks=TASKS, now=NOW)
    problems = caught.value.problems
    assert sorted((p.entry, p.field) for p in problems) == sorted((e, f) for e, f, _ in expected)
    for problem, (_, _, fragment) in zip(sorted(problems, key=lambda p: (str(p.entry), str(p.field))),
                                         sorted(expected, key=lambda e: (str(e[0]), str(e[1])))):
        assert fragment in problem.message, str(problem)


def test_problems_come_in_entry_order_one_line_each():
    raw = {"b": ok(every=1), "a": ok(task="nope")}
    with pytest.raises(ScheduleConfigError) as caught:
        validate_schedule(raw, settings=ScheduleSettings(), registered_tasks=TASKS, now=NOW)
    lines = str(caught.value).splitlines()
    assert lines == [
        "entry 'b': every: 1 s is below the minimum interval of 10 s",
        "entry 'a': task: unknown task 'nope' (not registered by any task module)",
    ]


def test_schedule_that_is_not_a_mapping_is_one_problem():
    with pytest.raises(ScheduleConfigError) as caught:
        validate_schedule([ok()], settings=ScheduleSettings(), registered_tasks=TASKS, now=NOW)
    assert [str(p) for p in caught.value.problems] == [
        "schedule: must be a mapping of entry name to entry, got [{'task': 'etl.poll', 'every': 60}]"
    ]


def test_budget_problem_names_task_entries_and_figure():
    raw = {name: ok(every=10) for name in ("p1", "p2", "p3")}
    with pytest.raises(ScheduleConfigError) as caught:
        validate_schedule(raw, settings=ScheduleSettings(), registered_tasks=TASKS, now=NOW)
    [problem] = caught.value.problems
    assert (problem.entry, problem.field) == (None, "budget")
    assert "task 'etl.poll' is projected at 1080 runs/hour" in problem.message
    assert "'p1' (360/h), 'p2' (360/h), 'p3' (360/h)" in problem.message
    assert "budget of 1000 runs/hour" in problem.message


def test_disabled_entry_is_still_validated():
    with pytest.raises(ScheduleConfigError) as caught:
        validate_schedule({"a": ok(enabled=False, every=1)}, settings=ScheduleSettings(),
                          registered_tasks=TASKS, now=NOW)
    assert [(p.entry, p.field) for p in caught.value.problems] == [("a", "every")]


def test_task_check_skipped_without_registered_tasks():
    result = validate_schedule({"a": ok(task="anything.at.all")}, settings=ScheduleSettings(),
                               registered_tasks=None, now=NOW)
    assert result.entries["a"].task == "anything.at.all"


# -- durations and settings: the values the table above builds on -----------------------------
@pytest.mark.parametrize(("value", "seconds"), [
    (15, 15.0), (2.5, 2.5), ("15s", 15.0), ("2m", 120.0), ("1h", 3600.0), ("1h30m", 5400.0),
    ("500ms", 0.5), ("1d", 86400.0), ("1d2h3m4s5ms", 93784.005), ("1.5h", 5400.0), ("45", 45.0), (" 2m ", 120.0),
], ids=["int_seconds", "float_seconds", "seconds", "minutes", "hours", "hours_and_minutes", "milliseconds",
        "days", "every_unit_largest_first", "fractional_unit", "bare_number_string", "surrounding_blanks"])
def test_duration_parses(value, seconds):
    from schedules.durations import parse_duration_s

    assert parse_duration_s(value) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("value", ["", "m", "5x", "1h1h", "5 m", "1m30", None, [5], True, float("nan")],
                         ids=["empty", "unit_only", "unknown_unit", "repeated_unit", "space_inside",
                              "trailing_number", "none", "list", "boolean", "nan"])
def test_duration_refuses(value):
    from schedules.durations import parse_duration_s
    from schedules.errors import DurationError

    with pytest.raises(DurationError):
        parse_duration_s(value)


def test_settings_defaults_and_values_from_env():
    assert ScheduleSettings.from_env({}) == ScheduleSettings()
    settings = ScheduleSettings.from_env({"BEATKEEPER_TIMEZONE": "Australia/Sydney", "BEATKEEPER_MIN_INTERVAL": "1m",
                                          "BEATKEEPER_MAX_RUNS_PER_HOUR": "5000"})
    assert (settings.timezone, settings.min_interval_s, settings.max_runs_per_hour) == ("Australia/Sydney", 60.0, 5000)


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("BEATKEEPER_TIMEZONE", "Sydney", "not an IANA time zone"),
    ("BEATKEEPER_MIN_INTERVAL", "soon", "is not a duration"),
    ("BEATKEEPER_MIN_INTERVAL", "-5", "must not be negative"),
    ("BEATKEEPER_MAX_RUNS_PER_HOUR", "lots", "expected a whole number"),
    ("BEATKEEPER_MAX_RUNS_PER_HOUR", "0", "must be greater than 0"),
], ids=["timezone_unknown", "min_interval_not_duration", "min_interval_negative", "budget_not_number",
        "budget_zero"])
def test_bad_setting_is_one_line_naming_the_variable(variable, value, reason):
    from schedules.errors import SettingsError

    with pytest.raises(SettingsError) as caught:
        ScheduleSettings.from_env({variable: value})
    assert (caught.value.variable, caught.value.value) == (variable, value)
    assert str(caught.value).startswith(f"{variable}={value!r}: ") and reason in str(caught.value)


def test_default_timezone_applies_to_wall_clock_entries_only():
    raw = {"c": ok(every=None, cron="0 3 * * *"), "e": ok()}
    result = validate_schedule(raw, settings=ScheduleSettings(timezone="Asia/Tokyo"), registered_tasks=TASKS, now=NOW)
    assert result.entries["c"].trigger.timezone == "Asia/Tokyo"
    assert result.entries["c"].config["timezone"] == "Asia/Tokyo"
    assert "timezone" not in result.entries["e"].config


def test_warnings_for_past_at_and_dst_moved_fixed_times_only():
    raw = {
        "old": ok(every=None, at="2026-01-01T00:00:00+00:00"),
        "sydney": ok(every=None, cron="30 2 * * *", timezone="Australia/Sydney"),
        "quarterly": ok(every=None, cron="*/15 * * * *", timezone="Australia/Sydney"),  # wildcard: no warning
        "morning": ok(every=None, cron="0 9 * * *", timezone="Australia/Sydney"),  # 09:00 is never skipped
        # Lord Howe repeats 01:30-02:00 in April but skips 02:00-02:30 in October: 01:45 is only repeated.
        "howe-first": ok(every=None, cron="45 1 * * *", timezone="Australia/Lord_Howe"),  # runs once: no warning
        "howe-both": ok(every=None, cron="45 1 * * *", timezone="Australia/Lord_Howe", dst={"repeat": "both"}),
        "gap-at": ok(every=None, at="2026-10-04T02:15", timezone="Australia/Sydney"),
        "twice-at": ok(every=None, at="2026-10-25T01:30", timezone="Europe/London"),
    }
    result = validate_schedule(raw, settings=ScheduleSettings(), registered_tasks=TASKS, now=NOW)
    assert [str(w) for w in result.warnings] == [
        "entry 'old': at: 2026-01-01T00:00:00+00:00 is in the past; it will never fire",
        "entry 'sydney': cron: 02:30 does not exist on 2026-10-04; fires once at 03:00 AEDT "
        "(2026-10-03T16:00:00Z); see `beatkeeper plan`",
        "entry 'howe-both': cron: fires at 01:45 in both repeated hours on 2027-04-04 (+11 and +1030); "
        "see `beatkeeper plan`",
        "entry 'gap-at': at: 02:15 does not exist on 2026-10-04; fires once at 03:00 AEDT "
        "(2026-10-03T16:00:00Z); see `beatkeeper plan`",
        "entry 'twice-at': at: 2026-10-25 01:30:00 happens twice in Europe/London; it fires at the first occurrence",
    ]
    assert set(result.entries) == set(raw)

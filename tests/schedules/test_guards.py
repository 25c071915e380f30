"""Runaway guards: the smallest gap between fires (DST and window changes included) and the
per-task budget of projected runs per hour."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from schedules.errors import ScheduleConfigError
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def validate(raw, **settings):
    return validate_schedule(raw, settings=ScheduleSettings(**settings), registered_tasks=None, now=NOW)


def problems_of(raw, **settings):
    with pytest.raises(ScheduleConfigError) as caught:
        validate(raw, **settings)
    return caught.value.problems


# -- minimum interval -------------------------------------------------------------------------
@pytest.mark.parametrize(("every", "allowed"), [(9.999, False), (10, True), ("10s", True), (5, False)],
                         ids=["just_below_refused", "exactly_minimum_allowed", "duration_at_minimum_allowed",
                              "half_minimum_refused"])
def test_interval_against_minimum(every, allowed):
    raw = {"a": {"task": "t", "every": every}}
    if allowed:
        assert validate(raw).entries["a"].trigger.every_s == 10
    else:
        [problem] = problems_of(raw)
        assert (problem.entry, problem.field) == ("a", "every")


def test_dst_shrunk_cron_gap_is_refused():
    # 01:59 then the gap-shifted 02:30/02:59 fire at 03:00 AEDT: one real minute on 2026-10-04.
    raw = {"a": {"task": "t", "cron": "30,59 1,2 * * *", "timezone": "Australia/Sydney"}}
    [problem] = problems_of(raw, min_interval_s=600)
    assert str(problem) == "entry 'a': cron: fires as little as 60 s apart, below the minimum interval of 600 s"


def test_same_cron_without_dst_keeps_its_wall_clock_gap():
    raw = {"a": {"task": "t", "cron": "30,59 1,2 * * *", "timezone": "UTC"}}
    [problem] = problems_of(raw, min_interval_s=1800)  # 01:30 -> 01:59 is 29 minutes
    assert "fires as little as 1740 s apart" in problem.message
    assert validate(raw, min_interval_s=1740).entries["a"].kind == "cron"


def brute_force_windows_min_gap_s(start_s: int, end_s: int) -> int:
    """Fires of [{hours 9, every 7m}, {every 10m}] in UTC by plain integer enumeration."""
    fires = []
    for t in range(start_s - start_s % 60, end_s, 60):  # every grid point is a whole minute
        in_nine = (t % 86400) // 3600 == 9
        if (in_nine and t % 420 == 0) or (not in_nine and t % 600 == 0):
            fires.append(t)
    return min(b - a for a, b in zip(fires, fires[1:]))


def test_windows_boundary_gap_is_the_smallest_gap():
    raw = {"a": {"task": "t", "timezone": "UTC",
                 "windows": [{"hours": "9", "every": "7m"}, {"every": "10m"}]}}
    start_s = int(NOW.timestamp())
    expected_s = brute_force_windows_min_gap_s(start_s, start_s + 14 * 86400)  # the pattern repeats within a week
    assert expected_s < 420  # a window change, not a grid, sets it
    [problem] = problems_of(raw, min_interval_s=expected_s + 1)
    assert (problem.entry, problem.field) == ("a", "windows")
    assert f"fires as little as {expected_s} s apart" in problem.message
    assert validate(raw, min_interval_s=expected_s).entries["a"].kind == "windows"


# -- invocation budget ------------------------------------------------------------------------
def three_pollers(**extra_on_first):
    raw = {name: {"task": "gtfs.poll", "every": 10} for name in ("p1", "p2", "p3")}
    raw["p1"].update(extra_on_first)
    return raw


def test_three_entries_every_10s_exceed_default_budget():
    [problem] = problems_of(three_pollers())
    assert str(problem) == (
        "schedule: budget: task 'gtfs.poll' is projected at 1080 runs/hour from entries "
        "'p1' (360/h), 'p2' (360/h), 'p3' (360/h), over its budget of 1000 runs/hour; "
        "raise it with max_runs_per_hour on one of them"
    )


def test_explicit_max_runs_per_hour_raises_the_task_budget():
    assert set(validate(three_pollers(max_runs_per_hour=1080)).entries) == {"p1", "p2", "p3"}


def test_explicit_budget_below_the_projection_still_refuses():
    [problem] = problems_of(three_pollers(max_runs_per_hour=1079))
    assert "over its budget of 1079 runs/hour" in problem.message


def test_explicit_budget_is_the_budget_the_worker_enforces():
    # One definition (schedules.guards.task_budgets): an entry's max_runs_per_hour is its task's
    # budget, below the default too; the worker enforces the same figure.
    problems = problems_of(three_pollers(max_runs_per_hour=5))
    assert [(p.entry, p.field) for p in problems] == [("p1", "max_runs_per_hour"), (None, "budget")]
    assert "over its budget of 5 runs/hour" in problems[1].message


def test_an_entry_planning_more_than_its_own_max_runs_per_hour_is_refused():
    """Issue 14: every 30 s with max_runs_per_hour 60 passed check; the worker skipped half the runs."""
    raw = {"sync": {"task": "t", "every": 30, "max_runs_per_hour": 60}}
    problems = problems_of(raw)
    assert [str(p) for p in problems][0] == ("entry 'sync': max_runs_per_hour: 60 is below the entry's own peak of "
                                             "120 runs/hour: the worker would skip the surplus runs")
    assert len(validate({"sync": {**raw["sync"], "max_runs_per_hour": 120}}).entries) == 1


def test_declared_budgets_apply_to_tasks_without_an_explicit_entry_budget():
    from schedules.guards import task_budgets

    specs = validate({"a": {"task": "t", "every": 60}, "b": {"task": "u", "every": 120, "max_runs_per_hour": 70},
                      "c": {"task": "u", "every": 60, "max_runs_per_hour": 90}}).entries
    assert task_budgets(specs, default_runs_per_hour=1000, declared={"t": 80, "u": 5, "v": 3}) == \
        {"t": 80, "u": 90, "v": 3}
    assert task_budgets(specs, default_runs_per_hour=1000) == {"t": 1000, "u": 90}


def test_budget_setting_raises_every_task_budget():
    assert len(validate(three_pollers(), max_runs_per_hour=1080).entries) == 3


@pytest.mark.parametrize("settings", [
    {},  # enabled: false in the entry itself
    {"disabled_names": frozenset({"p1"})},
    {"switched_off_variables": frozenset({"P1_SCHEDULER_DISABLED"})},
], ids=["enabled_false_spends_no_budget", "disable_list_spends_no_budget", "switch_variable_spends_no_budget"])
def test_disabled_entry_does_not_count_in_budget(settings):
    raw = three_pollers(**({} if settings else {"enabled": False}))
    assert len(validate(raw, **settings).entries) == 3  # 720/h counted, all three still validated


def test_budget_is_per_task():
    raw = {"a": {"task": "one", "every": 10}, "b": {"task": "two", "every": 10}, "c": {"task": "three", "every": 10}}
    assert len(validate(raw).entries) == 3


def test_budget_counts_cron_and_windows_peaks():
    raw = {
        "minutely": {"task": "t", "cron": "* * * * *"},  # 60/h
        "rush": {"task": "t", "windows": [{"hours": "7-9", "every": "10s"}, {"every": "1h"}]},  # 360/h peak
    }
    [problem] = problems_of(raw, max_runs_per_hour=419)
    assert "projected at 420 runs/hour" in problem.message
    assert len(validate(raw, max_runs_per_hour=420).entries) == 2


def test_budget_reported_alongside_other_problems():
    raw = {**three_pollers(), "typo": {"task": "other", "every": 60, "expirse": 5}}
    problems = problems_of(raw)
    assert [(p.entry, p.field) for p in problems] == [("typo", "expirse"), (None, "budget")]


def test_budget_of_a_task_with_an_invalid_entry_waits_for_the_fix():
    # The invalid entry may be the one that raises the budget: no guess either way.
    raw = {**three_pollers(), "p4": {"task": "gtfs.poll", "every": 10, "max_runs_per_hour": "lots"}}
    assert [(p.entry, p.field) for p in problems_of(raw)] == [("p4", "max_runs_per_hour")]

"""Kill switches decide which validated entries are registered, and say why each other one is not."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from schedules.killswitch import partition_enabled, switch_variable
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
RAW = {
    "gtfs-rt-poll": {"task": "t", "every": 30},
    "nightly.report": {"task": "t", "cron": "0 3 * * *"},
    "paused": {"task": "t", "every": 60, "enabled": False},
}


@pytest.fixture(scope="module")
def schedule():
    return validate_schedule(RAW, settings=ScheduleSettings(), registered_tasks=None, now=NOW)


@pytest.mark.parametrize(("name", "variable"), [
    ("gtfs-rt-poll", "GTFS_RT_POLL_SCHEDULER_DISABLED"),
    ("nightly.report", "NIGHTLY_REPORT_SCHEDULER_DISABLED"),
    ("Mixed Case/2", "MIXED_CASE_2_SCHEDULER_DISABLED"),
], ids=["dashes_become_underscores", "dots_become_underscores", "spaces_and_slashes_become_underscores"])
def test_switch_variable_name(name, variable):
    assert switch_variable(name) == variable


def test_nothing_set_keeps_every_enabled_entry(schedule):
    kept, left_out = partition_enabled(schedule, {})
    assert list(kept) == ["gtfs-rt-poll", "nightly.report"]
    assert left_out == {"paused": "enabled: false in the schedule"}


def test_disable_list_leaves_entries_out(schedule):
    kept, left_out = partition_enabled(schedule, {"BEATKEEPER_DISABLE": " gtfs-rt-poll, ,unknown-name"})
    assert list(kept) == ["nightly.report"]
    assert left_out["gtfs-rt-poll"] == "listed in BEATKEEPER_DISABLE"


@pytest.mark.parametrize(("value", "disabled"), [
    ("1", True), ("true", True), ("YES", True), ("on", True), ("maybe", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False), ("  ", False),
], ids=["one_disables", "true_disables", "yes_any_case_disables", "on_disables", "unexpected_value_disables",
        "zero_keeps", "false_keeps", "no_any_case_keeps", "off_keeps", "empty_keeps", "blank_keeps"])
def test_switch_variable_values(schedule, value, disabled):
    kept, left_out = partition_enabled(schedule, {"GTFS_RT_POLL_SCHEDULER_DISABLED": value})
    assert ("gtfs-rt-poll" in left_out) is disabled
    assert ("gtfs-rt-poll" in kept) is not disabled
    if disabled:
        assert left_out["gtfs-rt-poll"] == "GTFS_RT_POLL_SCHEDULER_DISABLED is set"


def test_every_reason_is_given(schedule):
    _, left_out = partition_enabled(schedule, {"BEATKEEPER_DISABLE": "paused", "PAUSED_SCHEDULER_DISABLED": "1"})
    assert left_out["paused"] == (
        "enabled: false in the schedule; listed in BEATKEEPER_DISABLE; PAUSED_SCHEDULER_DISABLED is set"
    )


def test_partition_accepts_a_plain_mapping_of_entries(schedule):
    kept, left_out = partition_enabled(schedule.entries, {"NIGHTLY_REPORT_SCHEDULER_DISABLED": "1"})
    assert set(kept) == {"gtfs-rt-poll"}
    assert set(left_out) == {"nightly.report", "paused"}


def test_settings_read_the_same_switches():
    settings = ScheduleSettings.from_env({"BEATKEEPER_DISABLE": "a,b", "X_SCHEDULER_DISABLED": "1",
                                          "Y_SCHEDULER_DISABLED": "0"})
    assert settings.disabled_names == frozenset({"a", "b"})
    assert settings.switched_off_variables == frozenset({"X_SCHEDULER_DISABLED"})


def test_kill_switches_matching_no_entry_are_warned_about():
    settings = ScheduleSettings.from_env({"BEATKEEPER_DISABLE": "gtfs-rt-pol,paused",
                                          "NIGHTLY_REPORTS_SCHEDULER_DISABLED": "1",
                                          "GTFS_RT_POLL_SCHEDULER_DISABLED": "1"})
    result = validate_schedule(RAW, settings=settings, registered_tasks=None, now=NOW)
    assert [str(w) for w in result.warnings] == [
        "schedule: BEATKEEPER_DISABLE: 'gtfs-rt-pol' is not an entry of this schedule; it disables nothing",
        "schedule: NIGHTLY_REPORTS_SCHEDULER_DISABLED: matches no entry of this schedule; it disables nothing",
    ]

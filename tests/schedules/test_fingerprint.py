"""The fingerprint changes exactly when what is registered changes, however the config is spelled."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from schedules.fingerprint import compact_ranges, fingerprint
from schedules.killswitch import partition_enabled
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def entries(raw, **settings):
    return validate_schedule(raw, settings=ScheduleSettings(**settings), registered_tasks=None, now=NOW).entries


def test_fingerprint_is_sha256_of_the_canonical_json():
    expected_doc = '{"a":{"every":120.0,"task":"t"}}'  # keys sorted, no spaces, durations as float seconds
    assert fingerprint(entries({"a": {"task": "t", "every": "2m"}})) == hashlib.sha256(expected_doc.encode()).hexdigest()


@pytest.mark.parametrize(("one", "other"), [
    ({"task": "t", "every": 120}, {"task": "t", "every": "2m"}),
    ({"task": "t", "cron": "0  3 * * *"}, {"task": "t", "cron": "0 3 * * *"}),
    ({"task": "t", "every": 60}, {"task": "t", "every": 60, "enabled": True, "args": [], "kwargs": {},
                                  "description": "", "phase": 0}),
    ({"task": "t", "cron": "0 3 * * *"}, {"task": "t", "cron": "0 3 * * *", "timezone": "UTC"}),
    ({"task": "t", "windows": [{"days": "mon-fri", "hours": "7,8,9", "every": 60}, {"every": 600}]},
     {"task": "t", "windows": [{"days": "1-5", "hours": "7-9", "every": "1m"}, {"every": "10m"}]}),
    ({"task": "t", "at": "2026-12-24T18:00:00+00:00"}, {"task": "t", "at": datetime(2026, 12, 24, 18, tzinfo=timezone.utc)}),
], ids=["duration_spelling", "cron_spacing", "explicit_defaults", "explicit_default_timezone",
        "window_range_spelling", "at_string_or_datetime"])
def test_same_meaning_same_fingerprint(one, other):
    assert fingerprint(entries({"a": one})) == fingerprint(entries({"a": other}))


@pytest.mark.parametrize(("one", "other"), [
    ({"task": "t", "every": 60}, {"task": "t", "every": 61}),
    ({"task": "t", "every": 60}, {"task": "u", "every": 60}),
    ({"task": "t", "every": 60}, {"task": "t", "every": 60, "kwargs": {"x": 1}}),
    ({"task": "t", "cron": "0 3 * * *"}, {"task": "t", "cron": "0 3 * * *", "timezone": "Europe/Paris"}),
    ({"task": "t", "cron": "0 3 * * *"}, {"task": "t", "cron": "0 3 * * *", "dst": {"gap": "skip"}}),
    ({"task": "t", "every": 60}, {"task": "t", "every": 60, "phase": 5}),
], ids=["interval", "task", "kwargs", "timezone", "dst_policy", "phase"])
def test_different_meaning_different_fingerprint(one, other):
    assert fingerprint(entries({"a": one})) != fingerprint(entries({"a": other}))


def test_entry_order_does_not_matter():
    a, b = {"task": "t", "every": 60}, {"task": "u", "cron": "0 3 * * *"}
    assert fingerprint(entries({"a": a, "b": b})) == fingerprint(entries({"b": b, "a": a}))


def test_default_timezone_setting_changes_wall_clock_entries_only():
    cron = {"c": {"task": "t", "cron": "0 3 * * *"}}
    interval = {"e": {"task": "t", "every": 60}}
    assert fingerprint(entries(cron)) != fingerprint(entries(cron, timezone="Asia/Tokyo"))
    assert fingerprint(entries(interval)) == fingerprint(entries(interval, timezone="Asia/Tokyo"))


def test_kill_switch_changes_the_registered_fingerprint():
    validated = validate_schedule({"a": {"task": "t", "every": 60}, "b": {"task": "t", "every": 90}},
                                  settings=ScheduleSettings(), registered_tasks=None, now=NOW)
    all_kept, _ = partition_enabled(validated, {})
    some_kept, _ = partition_enabled(validated, {"B_SCHEDULER_DISABLED": "1"})
    assert fingerprint(some_kept) == fingerprint(entries({"a": {"task": "t", "every": 60}}))
    assert fingerprint(some_kept) != fingerprint(all_kept)


@pytest.mark.parametrize(("values", "text"), [({5}, "5"), ({1, 2, 3}, "1-3"), ({0, 2, 3, 4, 9, 23}, "0,2-4,9,23")],
                         ids=["single", "one_run", "runs_and_singles"])
def test_compact_ranges(values, text):
    assert compact_ranges(frozenset(values)) == text

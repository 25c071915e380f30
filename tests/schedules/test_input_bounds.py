"""The bounds on schedule input, at their edges: the last value inside is accepted and works in
what beat does with it (next fire, catch-up arithmetic, a one-off's instant); the first value
outside is refused with one line naming the bound. The hostile extremes are in
``test_hostile_configs``; this file pins where the lines are drawn and that they refuse no more.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from schedules import converters, limits
from schedules.catchup import decide_catchup
from schedules.durations import MAX_DURATION_S
from schedules.errors import ConfigFileError, InvalidValue, ScheduleConfigError, SettingsError
from schedules.loader import load_schedule_file
from schedules.oneoff import AtTrigger
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
DAY_S = 86400


def validate(entry: dict):
    return validate_schedule({"job": {"task": "etl.poll", **entry}}, settings=ScheduleSettings(),
                             registered_tasks={"etl.poll"}, now=NOW)


def refusal(entry: dict) -> str:
    with pytest.raises(ScheduleConfigError) as caught:
        validate(entry)
    [problem] = caught.value.problems
    return str(problem)


@pytest.mark.parametrize(("inside", "outside", "line"), [
    ({"every": "3650d"}, {"every": "3650d1ms"},
     "entry 'job': every: '3650d1ms' is more than 3650d (about 10 years), the longest duration allowed"),
    ({"every": 60, "catchup_window": 3650 * DAY_S}, {"every": 60, "catchup_window": 3650 * DAY_S + 1},
     "entry 'job': catchup_window: 315360001 is more than 3650d (about 10 years), the longest duration allowed"),
    ({"every": 60, "expires": "3650d"}, {"every": 60, "expires": 3650.5 * DAY_S},
     "entry 'job': expires: 315403200.0 is more than 3650d"),
    ({"every": 60, "max_runs_per_hour": 1_000_000}, {"every": 60, "max_runs_per_hour": 1_000_001},
     "entry 'job': max_runs_per_hour: 1000001 is more than 1000000, the most allowed"),
    ({"every": 60, "catchup": "all", "catchup_max": 1000}, {"every": 60, "catchup": "all", "catchup_max": 1001},
     "entry 'job': catchup_max: 1001 is more than 1000, the most allowed"),
    ({"every": 60, "retry": {"max_retries": 100}}, {"every": 60, "retry": {"max_retries": 101}},
     "entry 'job': retry.max_retries: 101 is more than 100, the most allowed"),
    ({"at": "1970-01-01T00:00:00"}, {"at": "1969-12-31T23:59:59"},
     "entry 'job': at: year 1969 is outside 1970-2999, the years an at may name"),
], ids=["every", "catchup_window", "expires", "max_runs_per_hour", "catchup_max", "max_retries", "at_first_year"])
def test_last_value_inside_is_accepted_and_first_outside_refused(inside, outside, line):
    assert "job" in validate(inside).entries
    assert refusal(outside).startswith(line)


def test_longest_durations_work_in_what_beat_computes():
    spec = validate({"every": "3650d", "catchup": "all", "catchup_window": "3650d", "catchup_max": 1000}).entries["job"]
    following = spec.trigger.next_fire_after(NOW)
    assert NOW < following <= NOW + timedelta(seconds=MAX_DURATION_S)
    # catch-up over the longest window, after the longest outage its grid allows
    decision = decide_catchup(spec.trigger, last=following - timedelta(seconds=MAX_DURATION_S), now=following,
                              policy=spec.catchup, window_s=spec.catchup_window_s, max_runs=spec.catchup_max,
                              on_time_s=2)
    assert decision.run == [following] and decision.advance_to == following
    every_minute = validate({"every": 60, "catchup": "all", "catchup_window": "3650d"}).entries["job"]
    decision = decide_catchup(every_minute.trigger, last=NOW - timedelta(days=2), now=NOW, policy=every_minute.catchup,
                              window_s=every_minute.catchup_window_s, max_runs=1000, on_time_s=2)
    assert len(decision.run) == 1000 + 1 and decision.capped  # the most missed ones, and the one due now


@pytest.mark.parametrize(("local", "zone"), [
    (datetime(1970, 1, 1), "Pacific/Kiritimati"), (datetime(1970, 1, 1), "Etc/GMT+12"),
    (datetime(2999, 12, 31, 23, 59, 59), "Pacific/Kiritimati"), (datetime(2999, 12, 31, 23, 59, 59), "Etc/GMT+12"),
])
def test_at_years_at_the_edges_resolve_in_the_extreme_zones(local, zone):
    when = converters.at(local.isoformat())
    trigger = AtTrigger.from_local(when, timezone=zone)
    assert trigger.local_time == local and trigger.describe()
    fire = trigger.next_fire_after(NOW)
    assert (fire is None) == (local.year == 1970)


def test_at_beyond_2999_is_refused_by_the_converter():
    converters.at("2999-12-31T23:59:59")
    with pytest.raises(InvalidValue, match="year 3000 is outside 1970-2999"):
        converters.at("3000-01-01T00:00:00")


# -- file-level bounds -------------------------------------------------------------------------
def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".py"])
def test_nesting_at_the_depth_bound(tmp_path, suffix):
    def load(levels: int):
        text = '{"x": %s}' % nested(levels)  # the mapping is level 1, its key and lists from level 2
        path = tmp_path / f"s{levels}{suffix}"
        path.write_text(f"SCHEDULE = {text}\n" if suffix == ".py" else text)
        return load_schedule_file(path)

    assert load(limits.MAX_DEPTH - 1)["x"]
    with pytest.raises(ConfigFileError, match=f"nested deeper than {limits.MAX_DEPTH} levels"):
        load(limits.MAX_DEPTH)


@pytest.mark.parametrize(("text", "values"), [
    ('{"a": [1, 2, 3]}', 6),  # the mapping, its key, the list, three numbers
    ("a: &x [1, 2]\nb: *x\n", 9),  # the alias counts the three values of its anchor again
], ids=["plain", "alias"])
def test_value_count_at_the_bound(tmp_path, monkeypatch, text, values):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    monkeypatch.setattr(limits, "MAX_VALUES", values)
    loaded = load_schedule_file(path)
    limits.check_shape(loaded)  # a Python value with the same sharing counts the same
    monkeypatch.setattr(limits, "MAX_VALUES", values - 1)
    with pytest.raises(ConfigFileError, match=f"more than {values - 1} values"):
        load_schedule_file(path)
    with pytest.raises(limits.LimitExceeded):
        limits.check_shape(loaded)


@pytest.mark.parametrize(("uses", "refused"), [(2, False), (3, True)])
def test_aliases_may_add_what_the_file_writes_out_plus_the_extra(tmp_path, monkeypatch, uses, refused):
    path = tmp_path / "s.yaml"
    path.write_text("a: &x [1, 2]\nb: [%s]\n" % ", ".join(["*x"] * uses))  # 7 values written, 3 per alias
    monkeypatch.setattr(limits, "MAX_ALIAS_EXTRA_VALUES", 0)
    if refused:
        with pytest.raises(ConfigFileError, match="aliases expand to more values than the file writes out plus 0"):
            load_schedule_file(path)
    else:
        assert load_schedule_file(path)["b"] == [[1, 2]] * uses


def test_anchors_and_merge_keys_still_work(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: &base {task: etl.poll, every: 60, kwargs: {feed: a}}\n"
                    "other: {<<: *base, every: 120}\n"  # overriding a merged key is what merge keys are for
                    "third: {<<: [*base], kwargs: *base}\n")
    schedule = load_schedule_file(path)
    assert schedule["other"] == {"task": "etl.poll", "every": 120, "kwargs": {"feed": "a"}}
    assert schedule["third"]["kwargs"] is schedule["base"]


@pytest.mark.parametrize(("text", "line"), [
    ("a: 1\nyes: 2\ntrue: 3\n", 3),  # YAML 1.1 reads both as True
    ("a: {x: 1}\nb:\n  x: 1\n  y: 2\n  x: 3\n", 5),
    ("a: {<<: {x: 1}, x: 2, x: 3}\n", 1),
], ids=["two_spellings_of_true", "nested_mapping", "after_a_merge"])
def test_yaml_duplicate_keys_name_their_line(tmp_path, text, line):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match="duplicate key") as caught:
        load_schedule_file(path)
    assert caught.value.line == line


def test_json_duplicate_key_nested_in_kwargs(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"job": {"task": "etl.poll", "every": 60, "kwargs": {"feed": 1, "feed": 2}}}')
    with pytest.raises(ConfigFileError, match="duplicate key 'feed'"):
        load_schedule_file(path)


def test_a_large_real_schedule_fits_the_bounds(tmp_path):
    raw = {f"entry-{i:05d}": {"task": "etl.poll", "every": 30 + i % 50, "expires": "25s", "overlap": "skip",
                              "kwargs": {"feed": f"feed-{i}", "limit": 500}, "description": "polls one feed"}
           for i in range(10_000)}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(raw, indent=2))
    assert path.stat().st_size < limits.MAX_FILE_BYTES / 1.5
    assert load_schedule_file(path) == raw


def test_python_system_exit_does_not_stop_the_loading_process(tmp_path):
    path = tmp_path / "s.py"
    path.write_text("import sys\nsys.exit(7)\n")
    with pytest.raises(ConfigFileError) as caught:
        load_schedule_file(path)
    assert str(caught.value) == f"{path}:2: raised SystemExit while loading: 7"


@pytest.mark.parametrize(("variable", "value"), [
    ("BEATKEEPER_MAX_RUNS_PER_HOUR", "３"), ("BEATKEEPER_MAX_RUNS_PER_HOUR", "٣٠٠"),
    ("BEATKEEPER_MIN_INTERVAL", "٣٠s"), ("BEATKEEPER_MIN_INTERVAL", "１０"),
])
def test_settings_take_ascii_digits_only(variable, value):
    with pytest.raises(SettingsError) as caught:
        ScheduleSettings.from_env({variable: value})
    assert caught.value.variable == variable

"""The same schedule written as .py, .json, .yaml and .toml validates to identical entries;
files that cannot be read fail with one line naming the file (and the line when known)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from schedules.errors import ConfigFileError
from schedules.fingerprint import fingerprint
from schedules.loader import load_schedule_file
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule

CONFIGS = Path(__file__).parent / "configs"
FORMATS = ["schedule.py", "schedule.json", "schedule.yaml", "schedule.toml"]
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def validated(filename: str):
    raw = load_schedule_file(CONFIGS / filename)
    return validate_schedule(raw, settings=ScheduleSettings(), registered_tasks={"etl.poll", "etl.report"}, now=NOW)


@pytest.mark.parametrize("filename", FORMATS[1:])
def test_every_format_gives_the_entries_of_the_python_file(filename):
    reference = validated("schedule.py")
    other = validated(filename)
    assert list(other.entries) == list(reference.entries)
    for name, spec in reference.entries.items():
        assert other.entries[name] == spec, name  # trigger, every typed field and the config
    assert fingerprint(other.entries) == fingerprint(reference.entries)


def test_reference_schedule_is_normalized():
    entries = validated("schedule.yaml").entries
    assert entries["gtfs-rt-poll"].config == {
        "task": "etl.poll", "every": 30.0, "phase": 5.0, "expires": 25.0, "queue": "realtime",
        "kwargs": {"feed": "sydney-trains", "limit": 500}, "overlap": "skip", "lock_ttl": 60.0,
        "lock_key": ["feed"], "max_runtime": 25.0,
    }
    assert entries["nightly-report"].config["cron"] == "30 2 * * *"
    assert entries["xmas-notice"].config["at"] == "2026-12-24T18:00:00"
    assert entries["xmas-notice"].enabled is False
    assert entries["peak-poll"].config["windows"] == [
        {"every": 120.0, "hours": "7-9,17-19", "days": "1-5"}, {"every": 900.0},
    ]
    assert entries["peak-poll"].time_limit_s == 90.0


def test_normalized_config_validates_to_the_same_entry():
    first = validated("schedule.toml")
    again = validate_schedule({name: spec.config for name, spec in first.entries.items()},
                              settings=ScheduleSettings(), registered_tasks=None, now=NOW)
    assert again.entries == first.entries


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("name", "text", "reason", "line"), [
    ("bad.json", '{\n  "a": {"task": "t",}\n}\n', "invalid JSON", 2),
    ("bad.yaml", "a:\n  task: t\n every: 5\n", "invalid YAML", 3),
    ("bad.toml", "[a]\ntask = \"t\"\nevery = \n", "invalid TOML", 3),
    ("bad.py", "SCHEDULE = {\n  'a': (\n}\n", "invalid Python", None),
    ("raises.py", "x = 1\nSCHEDULE = {'a': 1 / 0}\n", "raised ZeroDivisionError while loading", 2),
    ("empty.py", "TASKS = {}\n", "defines no module-level SCHEDULE", None),
    ("list.json", "[1, 2]", "must be a mapping of entry name to entry, got list", None),
    ("empty.yaml", "", "must be a mapping of entry name to entry, got NoneType", None),
], ids=["json_syntax_error_has_line", "yaml_indent_error_has_line", "toml_missing_value_has_line",
        "python_syntax_error", "python_exception_while_loading_has_line", "python_without_schedule",
        "top_level_list_refused", "empty_yaml_refused"])
def test_unreadable_file_is_one_line(tmp_path, name, text, reason, line):
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigFileError) as caught:
        load_schedule_file(path)
    error = caught.value
    assert reason in error.reason
    if line is not None:
        assert error.line == line
        assert str(error).startswith(f"{path}:{line}: ")
    assert "\n" not in str(error)


def test_python_syntax_error_names_a_line(tmp_path):
    path = write(tmp_path, "bad.py", "SCHEDULE = {\n  'a': (\n}\n")
    with pytest.raises(ConfigFileError) as caught:
        load_schedule_file(path)
    assert caught.value.line in (2, 3)  # the parser may blame the opener or the closer


def test_missing_file(tmp_path):
    with pytest.raises(ConfigFileError) as caught:
        load_schedule_file(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_unknown_extension(tmp_path):
    path = write(tmp_path, "schedule.ini", "[a]\n")
    with pytest.raises(ConfigFileError) as caught:
        load_schedule_file(path)
    assert "unknown file type '.ini'; use one of .json, .py, .toml, .yaml, .yml" in str(caught.value)

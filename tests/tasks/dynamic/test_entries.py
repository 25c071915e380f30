"""Dynamic entries from Python and the CLI: stored, listed, removed; refused with the very line
``beatkeeper check`` prints for the same entry (the CLI: exit 1, that line, no traceback)."""
from __future__ import annotations

import json
import os

import pytest

from tasks.dynamic.entries import PEAKS_KEY, DynamicEntries, EntryRefused
from tasks.beat.schedule_source import load_validated_schedule
from schedules.errors import ScheduleConfigError
from schedules.platform import effective_schedule
from tests.tasks.cli.test_cli import beatkeeper, clean_env

TASK = "beatkeeper.heartbeat"
FILE = {"file-entry": {"task": TASK, "every": 60}}


@pytest.fixture
def environ(tmp_path):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(FILE))
    return {**clean_env(), "BEATKEEPER_SCHEDULE": str(path), "BEATKEEPER_MAX_RUNS_PER_HOUR": "300"}


@pytest.fixture
def entries(app, redis_client, environ):
    found = DynamicEntries.for_app(app, environ=environ)
    yield found
    found.remove_prefix("")  # what lists the schedule in later tests sees none of them


def check_lines(app, environ, raw: dict) -> list[str]:
    """What `beatkeeper check` prints for the schedule file plus ``raw``."""
    with pytest.raises(ScheduleConfigError) as refused:
        load_validated_schedule(app, environ=environ, raw={**effective_schedule(environ), **raw})
    return [str(p) for p in refused.value.problems]


def test_put_get_names_and_remove_by_name_and_prefix(entries, redis_client):
    spec = {"task": TASK, "every": 3600, "kwargs": {}, "catchup": "latest"}
    for name in ("gift:42:7d", "gift:42:3d", "gift:43:7d", "other"):
        entries.put(name, spec)
    assert entries.get("gift:42:7d") == spec
    assert entries.get("nope") is None
    assert entries.names() == ["gift:42:3d", "gift:42:7d", "gift:43:7d", "other"]
    assert entries.names("gift:42:") == ["gift:42:3d", "gift:42:7d"]
    assert redis_client.zscore("redbeat::schedule", "redbeat:gift:42:7d") is not None
    assert entries.remove_prefix("gift:42:") == 2
    assert entries.remove("other") is True
    assert entries.remove("other") is False
    assert entries.names() == ["gift:43:7d"]
    assert redis_client.zscore("redbeat::schedule", "redbeat:gift:42:7d") is None
    assert not redis_client.exists("redbeat:gift:42:7d")
    assert float(redis_client.hget(PEAKS_KEY, TASK)) == pytest.approx(1.0)  # only gift:43:7d's 1 run/hour left


@pytest.mark.parametrize("spec", [
    pytest.param({"task": TASK, "every": 2}, id="below_the_minimum_interval"),
    pytest.param({"task": TASK, "cron": "* * * * *", "expirse": 5}, id="unknown_key"),
    pytest.param({"task": "beatkeeper.heartbeet", "every": 60}, id="unknown_task"),
    pytest.param({"task": TASK, "every": 60, "args": ["surplus"]}, id="args_the_task_cannot_take"),
    pytest.param({"task": TASK, "every": 60, "cron": "* * * * *"}, id="two_kinds"),
])
def test_refused_with_checks_line(app, entries, environ, spec):
    with pytest.raises(EntryRefused) as refused:
        entries.put("dyn", spec)
    assert str(refused.value).splitlines() == check_lines(app, environ, {"dyn": spec})
    assert entries.names() == []


def test_an_entry_that_pushes_its_task_over_budget_is_refused_with_checks_line(app, entries, environ, redis_client):
    # budget 300/h: the file's two entries of the task spend 120/h (the platform's heartbeat and file-entry)
    accepted = {f"d{i}": {"task": TASK, "every": 60} for i in range(3)}
    for name, spec in accepted.items():
        entries.put(name, spec)
    over = {"task": TASK, "every": 60}
    with pytest.raises(EntryRefused) as refused:
        entries.put("d3", over)
    [line] = str(refused.value).splitlines()
    assert [line] == check_lines(app, environ, {**accepted, "d3": over})
    assert line.startswith(f"schedule: budget: task '{TASK}' is projected at 360 runs/hour")
    # replacing an entry spends its own share again, not twice; removing one frees it
    entries.put("d2", {"task": TASK, "every": 120})
    entries.put("d3", {"task": TASK, "every": 120})
    assert entries.remove("d0")
    entries.put("d4", {"task": TASK, "every": 60})


@pytest.mark.parametrize(("name", "spec", "line"), [
    pytest.param("file-entry", {"task": TASK, "every": 60},
                 "entry 'file-entry': name: is a schedule file entry; a dynamic entry cannot take it",
                 id="a_file_entrys_name"),
    pytest.param("beatkeeper-heartbeat", {"task": TASK, "every": 60},
                 "entry 'beatkeeper-heartbeat': name: is a schedule file entry; a dynamic entry cannot take it",
                 id="a_platform_entrys_name"),
    pytest.param("dyn", {"task": TASK, "every": 60, "max_runs_per_hour": 5000},
                 "entry 'dyn': max_runs_per_hour: a dynamic entry cannot set its task's budget; set it in the "
                 "schedule file or the task's declaration", id="its_own_budget"),
    pytest.param("dyn", {"task": TASK, "at": "2020-01-01T00:00:00"},
                 "entry 'dyn': at: 2020-01-01T00:00:00+00:00 is in the past; it will never fire",
                 id="an_at_in_the_past"),
])
def test_refused_beyond_a_file_entrys_rules(entries, name, spec, line):
    with pytest.raises(EntryRefused) as refused:
        entries.put(name, spec)
    assert str(refused.value) == line
    assert entries.names() == []


def test_cli_put_ls_rm(redis_client, environ):
    spec = {"task": TASK, "every": 3600}
    put = beatkeeper("entries", "put", "cli:1", "--json", json.dumps(spec), env=environ)
    assert (put.returncode, put.stdout) == (0, "cli:1: stored\n"), put.stderr
    listed = beatkeeper("entries", "ls", "--json", env=environ)
    assert json.loads(listed.stdout) == {"cli:1": spec}
    gone = beatkeeper("entries", "rm", "--prefix", "cli:", env=environ)
    assert (gone.returncode, gone.stdout) == (0, "1 removed\n")
    missing = beatkeeper("entries", "rm", "cli:1", env=environ)
    assert missing.returncode == 1 and missing.stderr == "cli:1: no such dynamic entry\n"


def test_cli_refuses_with_the_line_check_prints(redis_client, environ, tmp_path):
    spec = {"task": TASK, "every": 2}
    refused = beatkeeper("entries", "put", "dyn", "--json", json.dumps(spec), env=environ)
    assert refused.returncode == 1
    assert refused.stdout == ""
    [line] = refused.stderr.splitlines()
    schedule = tmp_path / "with-dyn.json"
    schedule.write_text(json.dumps({**FILE, "dyn": spec}))
    checked = beatkeeper("check", "--config", str(schedule), env=environ)
    assert checked.returncode == 1
    assert checked.stderr.splitlines()[0] == line == "entry 'dyn': every: 2 s is below the minimum interval of 10 s"
    from_file = tmp_path / "spec.yaml"
    from_file.write_text("task: beatkeeper.heartbeet\nevery: 60\n")
    refused = beatkeeper("entries", "put", "dyn", "--file", str(from_file), env=environ)
    assert refused.returncode == 1
    assert refused.stderr == ("entry 'dyn': task: unknown task 'beatkeeper.heartbeet'; "
                              "did you mean 'beatkeeper.heartbeat'?\n")
    assert beatkeeper("entries", "ls", env=environ).stdout == ""


def test_dynamic_entries_appear_in_plan_status_and_what_the_monitor_judges(app, entries, environ):
    from tasks.cli.common import utc_now
    from tasks.infra.redis_client import app_redis
    from tasks.wiring import specs_loader

    entries.put("shown:hourly", {"task": TASK, "cron": "5 * * * *", "timezone": "Europe/London"})
    plan = beatkeeper("plan", "--days", "1", "--json", env=environ)
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)["entries"]
    assert "shown:hourly" in planned and "file-entry" in planned
    status = beatkeeper("status", "--json", "--no-workers", env=environ)
    assert "shown:hourly" in {e["name"] for e in json.loads(status.stdout)["entries"]}, status.stderr
    judged = specs_loader(app, app_redis(app))(utc_now())  # what the monitor's rules (missed runs) judge
    assert judged["shown:hourly"].trigger.describe() == "cron '5 * * * *' Europe/London"

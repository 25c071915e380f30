"""`beatkeeper check` is the one gate (issue 14): what beat's start-up or a worker would refuse,
check refuses first, with the same line; what check accepts, beat starts with."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tasks.beat.scheduler import BeatkeeperScheduler
from tests.tasks import history_tasks  # noqa: F401  (registers the tasks the schedules below name)


def check(tmp_path, schedule: dict) -> tuple[int, list[str]]:
    from tasks import cli

    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(schedule))
    result = CliRunner().invoke(cli.main, ["check", "--config", str(path)])
    return result.exit_code, result.output.splitlines()


def start_beat(app, monkeypatch, tmp_path, schedule: dict | None, env: dict | None = None) -> BeatkeeperScheduler:
    """beat's start-up, in this process: validation, self-checks, registration, publication."""
    if schedule is not None:
        path = tmp_path / "beat-schedule.json"
        path.write_text(json.dumps(schedule))
        monkeypatch.setenv("BEATKEEPER_SCHEDULE", str(path))
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    return BeatkeeperScheduler(app=app, lazy=False)


def beat_refusal(app, monkeypatch, tmp_path, capsys, schedule: dict) -> list[str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        start_beat(app, monkeypatch, tmp_path, schedule)
    assert stopped.value.code == 1
    return capsys.readouterr().err.splitlines()


def test_an_entry_every_30s_with_60_runs_per_hour_is_refused_by_check(app, tmp_path):
    """It passed check (budget max(1000, 60)); the worker enforced 60/h and skipped half the runs."""
    code, lines = check(tmp_path, {"sync": {"task": "beatkeeper.heartbeat", "every": 30, "max_runs_per_hour": 60}})
    assert code == 1
    assert "entry 'sync': max_runs_per_hour: 60 is below the entry's own peak of 120 runs/hour: " \
           "the worker would skip the surplus runs" in lines


def test_lock_ttl_5000_is_refused_by_check_with_the_line_beat_prints(app, redis_client, monkeypatch, tmp_path,
                                                                      capsys):
    """It passed check and beat; every run then failed in the worker, unrecorded."""
    schedule = {"sync": {"task": "beatkeeper.heartbeat", "every": 60, "lock_ttl": 5000}}
    line = ("entry 'sync': lock_ttl: 5000 s exceeds the lock TTL cap of 3600 s; "
            "lower it or raise BEATKEEPER_MAX_LOCK_TTL")
    code, lines = check(tmp_path, schedule)
    assert code == 1 and line in lines
    assert line in beat_refusal(app, monkeypatch, tmp_path, capsys, schedule)
    assert not redis_client.exists("redbeat:sync")


def test_expires_beyond_the_visibility_timeout_is_refused_alike(app, redis_client, monkeypatch, tmp_path, capsys):
    schedule = {"late": {"task": "beatkeeper.heartbeat", "every": 60, "expires": 7201}}
    line = ("entry 'late': expires: 7201 s exceeds the broker's visibility_timeout of 7200 s; "
            "lower it or raise BEATKEEPER_VISIBILITY_TIMEOUT")
    code, lines = check(tmp_path, schedule)
    assert code == 1 and line in lines
    assert line in beat_refusal(app, monkeypatch, tmp_path, capsys, schedule)


def test_a_task_declaration_the_worker_would_refuse_is_refused_by_check(app, tmp_path):
    @app.task(name="tests.contract.greedy_lock", lock_ttl_s=5000, shared=False)
    def greedy_lock() -> None:
        """Declares a lock TTL over the cap: the worker would fail every run of it."""

    try:
        code, lines = check(tmp_path, {})
    finally:
        app.tasks.pop("tests.contract.greedy_lock")
    assert code == 1
    assert ("schedule: task tests.contract.greedy_lock: lock_ttl_s=5000: 5000 s exceeds the lock TTL cap of 3600 s; "
            "lower it or raise BEATKEEPER_MAX_LOCK_TTL") in lines


def test_beat_publishes_the_budget_check_computed(app, redis_client, monkeypatch, tmp_path):
    from tasks.policy import PublishedPolicies

    schedule = {"a": {"task": "tests.history.ok", "every": 60, "max_runs_per_hour": 90, "args": ["a"]},
                "b": {"task": "tests.history.ok", "every": 120, "max_runs_per_hour": 70, "args": ["b"]},
                "c": {"task": "tests.history.counted", "every": 60, "args": ["c"]}}
    start_beat(app, monkeypatch, tmp_path, schedule, env={"BEATKEEPER_MAX_RUNS_PER_HOUR": "500"})
    published = PublishedPolicies(redis_client, refresh_s=0)
    assert (published.budget_for("tests.history.ok"), published.budget_for("tests.history.counted"),
            published.budget_for("tests.history.small_budget"), published.default_budget()) == (90, 500, 2, 500)
    assert published.entry_fields("a", "tests.history.ok") == {}
    assert published.entry_fields("a", "tests.history.counted") == {}  # bound to the entry's own task


def test_a_lock_key_naming_no_argument_of_the_task_is_refused_by_check(app, tmp_path):
    """The worker fails every run whose lock key names an argument the task does not take."""
    entry = {"task": "tests.history.ok", "every": 60, "args": ["k"]}
    code, lines = check(tmp_path, {"sync": {**entry, "lock_key": ["feed"]}})
    assert code == 1
    assert "entry 'sync': lock_key: task tests.history.ok has no argument 'feed' (its named arguments: hold_s, key)" \
        in lines
    assert check(tmp_path, {"sync": {**entry, "lock_key": ["key"]}})[0] == 0


def test_args_the_task_cannot_take_are_refused_by_check(app, tmp_path):
    """Celery refuses such a send at dispatch: beat could never deliver the entry."""
    code, lines = check(tmp_path, {"sync": {"task": "tests.history.ok", "every": 60, "args": ["a"],
                                            "kwargs": {"key": "b"}}})
    assert code == 1
    assert "entry 'sync': args: task tests.history.ok cannot be called with these args and kwargs: " \
           "multiple values for argument 'key'" in lines


def test_args_over_the_message_size_a_worker_accepts_are_refused_by_check(app, tmp_path):
    """A worker rejects such a message as poison (tasks.poison): every run would be lost."""
    code, lines = check(tmp_path, {"big": {"task": "tests.history.ok", "every": 60, "args": ["x" * 1_100_000]}})
    assert code == 1
    assert any(line.startswith("entry 'big': args: args and kwargs are 1100010 bytes as JSON, over the 1048576 "
                               "bytes a worker accepts") for line in lines), lines


def test_beat_lock_timing_beat_would_refuse_is_refused_by_check_with_the_same_line(
        app, redis_client, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(app.conf, "redbeat_lock_timeout", 10)  # BEATKEEPER_BEAT_LOCK_TIMEOUT=10, loop 5 s
    code, lines = check(tmp_path, {})
    [line] = [line for line in lines if "self-check beat-lock-timeout" in line]
    assert code == 1 and "BEATKEEPER_BEAT_LOCK_TIMEOUT" in line
    assert line in beat_refusal(app, monkeypatch, tmp_path, capsys, {})

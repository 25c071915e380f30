"""``beatkeeper check`` and ``beatkeeper plan`` as a user runs them: real subprocesses on the real app.

Exit codes: 0 valid, 1 schedule problems (one line each on stderr), 2 usage error or
unreadable file. No output ever holds a traceback.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[3]
TASK = "beatkeeper.heartbeat"  # registered by the real app

GOOD_YAML = f"""
gtfs-rt-poll:
  task: {TASK}
  every: 30s
nightly:
  task: {TASK}
  cron: "30 2 * * *"
  timezone: Australia/Sydney
  expected_runtime: 5m
"""

BAD_YAML = f"""
gtfs-rt-poll:
  task: {TASK}
  every: 0.1
  expirse: 5
nightly:
  task: beatkeeper.nope
  cron: "0 24 * * *"
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any schedule setting or kill switch, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BEATKEEPER_") and not k.endswith("_SCHEDULER_DISABLED")}
    return {**env, "BEATKEEPER_DATA_DIR": os.environ.get("BEATKEEPER_DATA_DIR", ""), **extra}


def beatkeeper(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "tasks.cli", *args], cwd=ROOT, env=env or clean_env(),
                            capture_output=True, text=True, timeout=60)
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream
        assert "internal error" not in stream  # an unexpected failure here is a bug, not a pass
    return result


@pytest.fixture
def config(tmp_path):
    def write(text: str, name: str = "schedule.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


def test_check_valid_file_summarises_each_entry(config):
    result = beatkeeper("check", "--config", str(config(GOOD_YAML)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"gtfs-rt-poll: {TASK}, every 30s; next ")
    assert lines[0].endswith("; 120 runs/hour peak")
    assert lines[1].startswith(f"nightly: {TASK}, cron '30 2 * * *' Australia/Sydney; next ")
    assert "T02:30:00+1" in lines[1] and "Z)" in lines[1]  # local time in Sydney, then UTC
    assert lines[2].startswith("ok: 2 entries valid")
    # Sydney springs forward every October: the fixed 02:30 is warned about, the run still valid.
    [warning] = result.stderr.splitlines()
    assert warning.startswith("warning: entry 'nightly': cron: 02:30 does not exist on ")
    assert warning.endswith("see `beatkeeper plan`")


def test_check_without_config_uses_the_platform_schedule():
    result = beatkeeper("check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"beatkeeper-heartbeat: {TASK}, every 1m; next ")


def test_check_reports_every_problem_one_line_each(config):
    path = config(BAD_YAML)
    result = beatkeeper("check", "--config", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "entry 'gtfs-rt-poll': expirse: unknown key 'expirse'; did you mean 'expires'?",
        "entry 'nightly': cron: hour: 24 is outside 0-23",
        "entry 'nightly': task: unknown task 'beatkeeper.nope'; did you mean 'beatkeeper.heartbeat'?",
        "3 problem(s) found",
    ]


def test_check_refuses_the_budget_with_one_line(config):
    text = "".join(f"p{i}:\n  task: {TASK}\n  every: 10\n" for i in range(3))
    result = beatkeeper("check", "--config", str(config(text)))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(
        f"schedule: budget: task '{TASK}' is projected at 1080 runs/hour from entries 'p0' (360/h)")


def test_check_shows_kill_switched_entries(config):
    path = config(GOOD_YAML)
    result = beatkeeper("check", "--config", str(path), env=clean_env(GTFS_RT_POLL_SCHEDULER_DISABLED="1"))
    assert result.returncode == 0, result.stderr
    assert f"gtfs-rt-poll: {TASK}, every 30s; LEFT OUT: GTFS_RT_POLL_SCHEDULER_DISABLED is set" in result.stdout
    assert "(1 registered, 1 left out" in result.stdout


@pytest.mark.parametrize(("name", "text", "message"), [
    ("schedule.yaml", "a:\n  task: x\n every: 5\n", "schedule.yaml:3: invalid YAML"),
    ("schedule.json", '{"a": ', "schedule.json:1: invalid JSON"),
    ("schedule.ini", "[a]\n", "unknown file type '.ini'"),
], ids=["unparseable_yaml_exit_2", "unparseable_json_exit_2", "unknown_extension_exit_2"])
def test_check_unreadable_file_exits_2_with_one_line(config, name, text, message):
    result = beatkeeper("check", "--config", str(config(text, name)))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("beatkeeper: ") and message in line


def test_check_missing_file_exits_2(tmp_path):
    result = beatkeeper("check", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"beatkeeper: {tmp_path / 'absent.toml'}: no such file"]


def test_check_bad_setting_exits_2(config):
    result = beatkeeper("check", "--config", str(config(GOOD_YAML)), env=clean_env(BEATKEEPER_MIN_INTERVAL="soon"))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("beatkeeper: BEATKEEPER_MIN_INTERVAL='soon': ")


def test_unknown_option_is_a_usage_error():
    result = beatkeeper("check", "--bogus")
    assert result.returncode == 2
    assert "No such option" in result.stderr and "--bogus" in result.stderr


def test_plan_json_has_the_contract_shape(config):
    result = beatkeeper("plan", "--config", str(config(GOOD_YAML)), "--json",
                        "--start", "2026-10-01T00:00:00+10:00", "--days", "7", "--cost-per-worker-hour", "0.2")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert set(plan) >= {"entries", "dst", "cost"}
    nightly = plan["entries"]["nightly"]
    assert "2026-10-04T03:00:00+11:00" in nightly["fires"]  # shifted out of the spring-forward gap
    assert "2026-10-03T16:00:00+00:00" in nightly["fires_utc"]
    assert len(plan["entries"]["gtfs-rt-poll"]["fires"]) == 7 * 24 * 120
    [row] = [row for row in plan["dst"] if row["in_window"]]  # the next fall-back, beyond, is listed too
    assert (row["timezone"], row["kind"], row["effects"]["nightly"]["effect"]) == ("Australia/Sydney", "gap", "shifted")
    assert plan["cost"]["cost_per_worker_hour"] == 0.2
    assert plan["cost"]["total"]["runs_per_day"] == pytest.approx(120 * 24 + 7 / 7)


def test_plan_text_lists_fires_dst_and_cost(config):
    result = beatkeeper("plan", "--config", str(config(GOOD_YAML)), "--start", "2026-10-01T00:00+10:00",
                        "--end", "2026-10-08T00:00+11:00", "--fires", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "  2026-10-04T03:00:00+11:00 (2026-10-03T16:00:00Z)" not in out  # only 2 fires shown per entry
    assert "  ... 5 more (7 in all)" in out
    assert "2026-10-03T16:00:00Z Australia/Sydney gap +10:00 -> +11:00" in out
    assert "    nightly: shifted: 02:30 does not exist on 2026-10-04" in out
    assert "cost projection:" in out and "TOTAL" in out
    assert "assumed 1 s per run: gtfs-rt-poll" in out


def test_plan_bad_start_exits_2_with_one_message():
    result = beatkeeper("plan", "--start", "yesterday")
    assert result.returncode == 2
    assert "Invalid value for --start: 'yesterday' is not an ISO-8601 date-time" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--end", "2026-13-01"], "Invalid value for --end"),
    (["--end", "2026-10-08", "--days", "3"], "give --end or --days, not both"),
    (["--start", "2026-10-08", "--end", "2026-10-01"], "the window is empty"),
    (["--days", "0"], "--days"),
    (["--cost-per-worker-hour", "-1"], "--cost-per-worker-hour"),
], ids=["bad_end_iso", "end_and_days_together", "end_before_start", "zero_days", "negative_price"])
def test_plan_bad_window_is_a_usage_error(args, message):
    # In-process (same click command, no interpreter start-up per case).
    from tasks import cli

    result = CliRunner().invoke(cli.main, ["plan", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_plan_of_invalid_schedule_exits_1(config):
    result = beatkeeper("plan", "--config", str(config(BAD_YAML)))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "3 problem(s) found"


def test_unexpected_failure_is_one_line_exit_2(monkeypatch):
    # In-process: a bug deep inside becomes one line, not a traceback (BEATKEEPER_DEBUG unset).
    from tasks import cli
    from tasks.cli import check

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(check, "load_schedule", broken)
    monkeypatch.delenv("BEATKEEPER_DEBUG", raising=False)
    result = CliRunner().invoke(cli.main, ["check"])
    assert result.exit_code == 2
    assert result.output.strip() == ("beatkeeper: internal error: RuntimeError: boom "
                                     "(BEATKEEPER_DEBUG=1 shows the traceback)")


def test_plan_json_fires_option_limits_the_listing(config):
    result = beatkeeper("plan", "--config", str(config(GOOD_YAML)), "--json", "--fires", "3",
                        "--start", "2026-10-01T00:00:00+10:00", "--days", "1")
    assert result.returncode == 0, result.stderr
    poll = json.loads(result.stdout)["entries"]["gtfs-rt-poll"]
    assert (len(poll["fires"]), poll["fire_count"], poll["fires_truncated"]) == (3, 2880, True)

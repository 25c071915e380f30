"""Every ``beatkeeper`` command with Redis or the history database out of reach, and with
settings that cannot work: one line naming the setting and its target (password masked),
a non-zero exit, within 10 s, never a traceback.

The command list is walked from the click group itself, so a new command is covered as soon
as it is registered: the walk fails until the command is given its sample arguments and its
class below.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from tasks.cli import main
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 10.0
PASSWORD = "s3cret-pw"

#: Sample arguments of every leaf command (its path in the group -> argv tail).
SAMPLE_ARGS: dict[str, tuple[str, ...]] = {
    "check": (), "plan": (), "status": (), "history": (),
    "pause": ("beatkeeper-heartbeat",), "resume": ("beatkeeper-heartbeat",),
    "db upgrade": (), "db current": (),
    "pipeline runs": (), "pipeline show": ("no-such-run",), "pipeline start": ("gtfs-static",),
    "pipeline resume": ("no-such-run",),
    "monitor": ("--port", "0"), "flower": (),
    "trigger": ("beatkeeper-heartbeat",), "dead-letters": (),
    "import": ("--from-celery", "tests.importers.every_shape:app", "--days", "1"),
    "health worker": (), "health beat": (), "settings": (),
    "entries put": ("dyn", "--json", '{"task": "beatkeeper.heartbeat", "every": 60}'),
    "entries rm": ("dyn",), "entries ls": (),
}
#: Environment a command's sample arguments need: gtfs-static is the transit example's pipeline.
SAMPLE_ENV: dict[str, dict[str, str]] = {"pipeline start": {"BEATKEEPER_EXAMPLE": "transit"}}
#: Commands that never need Redis (they read the schedule or the database only).
WITHOUT_REDIS = {"check", "plan", "db upgrade", "db current", "pipeline runs", "pipeline show", "import",
                 "settings"}
#: Commands that read or write the history database.
WITH_DATABASE = {"history", "db upgrade", "db current", "pipeline runs", "pipeline show"}
#: Long-running services: they wait for Redis instead of exiting (tests/process/test_redis_down.py).
SERVICES = {"monitor", "flower"}


def leaf_commands(group: click.Group = main, prefix: str = "") -> list[str]:
    ctx = click.Context(group)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = f"{prefix}{name}"
        found += leaf_commands(command, f"{path} ") if isinstance(command, click.Group) else [path]
    return found


COMMANDS = leaf_commands()


def test_every_command_is_classified_so_the_walk_covers_it():
    assert set(COMMANDS) == set(SAMPLE_ARGS), "give a new command its sample arguments here"
    assert {"status", "pause", "resume", "history", "check", "flower"} <= set(COMMANDS)


def run(path: str, env: dict[str, str], *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    argv = [sys.executable, "-m", "tasks.cli", *path.split(), *SAMPLE_ARGS.get(path, ()), *extra]
    started = time.monotonic()
    result = subprocess.run(argv, cwd=ROOT, env={**env, **SAMPLE_ENV.get(path, {})}, capture_output=True, text=True,
                            timeout=60)
    return result, time.monotonic() - started


def one_line(result: subprocess.CompletedProcess) -> str:
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream and "internal error" not in stream, stream
        assert PASSWORD not in stream
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {**os.environ, "BEATKEEPER_DATA_DIR": str(tmp_path / "data"), "FLOWER_BASIC_AUTH": "ops:pw"}


@pytest.mark.parametrize("path", [c for c in COMMANDS if c not in SERVICES])
def test_with_redis_down_each_command_says_so_in_one_line_and_exits_non_zero_within_10_s(path, env):
    port = free_port()  # nothing listens there
    env["REDIS_URL"] = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    result, took_s = run(path, env)
    assert took_s < LIMIT_S, f"{path} took {took_s:.1f} s"
    if path in WITHOUT_REDIS:  # works without Redis; if it does fail, in one line
        assert result.returncode == 0 or one_line(result), result.stderr
        assert "Traceback" not in result.stderr
        return
    line = one_line(result)
    assert result.returncode == 3, (path, result.stderr)
    assert line.startswith(f"beatkeeper: Redis unreachable at REDIS_URL=redis://:**@127.0.0.1:{port}/0: ")
    assert "Connection refused" in line


def test_status_says_first_that_it_cannot_see_the_platform(env):
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    result, _ = run("status", env)
    assert result.returncode == 3
    assert result.stderr.splitlines()[0].startswith("beatkeeper: Redis unreachable at REDIS_URL=")
    assert "beat is not running" not in result.stdout  # unknown, not "not running"


@pytest.mark.parametrize("path", sorted(WITH_DATABASE))
def test_with_the_database_down_each_command_names_database_url_in_one_line(path, env):
    port = free_port()
    env["DATABASE_URL"] = f"postgresql+psycopg2://beatkeeper:{PASSWORD}@127.0.0.1:{port}/beatkeeper"
    result, took_s = run(path, env)
    assert took_s < LIMIT_S
    line = one_line(result)
    assert result.returncode != 0
    assert line.startswith(f"beatkeeper: history database unusable at DATABASE_URL="
                           f"postgresql+psycopg2://beatkeeper:***@127.0.0.1:{port}/beatkeeper: ")


@pytest.mark.parametrize("path", ["check", "status", "pause", "plan"])
def test_a_misspelt_task_module_is_one_line_naming_beatkeeper_task_modules(path, env):
    env["BEATKEEPER_TASK_MODULES"] = "tasks.builtn"
    result, _ = run(path, env)
    assert result.returncode == 2
    assert one_line(result) == ("beatkeeper: BEATKEEPER_TASK_MODULES='tasks.builtn': cannot import it "
                                "(ModuleNotFoundError: No module named 'tasks.builtn')")


@pytest.mark.parametrize("path", ["check", "status", "pause"])
def test_a_redis_url_that_is_not_one_is_one_line_naming_redis_url(path, env):
    env["REDIS_URL"] = f"http://user:{PASSWORD}@127.0.0.1:6379/0"
    result, _ = run(path, env)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("beatkeeper: REDIS_URL='http://user:**@127.0.0.1:6379/0")
    assert "not a Redis URL" in line


@pytest.mark.parametrize("value", ["admin:", ":pw", "admin", "", "ops:pw,admin:"])
def test_flower_refuses_missing_or_empty_credentials_in_one_line(value, env):
    env["FLOWER_BASIC_AUTH"] = value
    result, _ = run("flower", env)
    assert result.returncode == 2
    assert one_line(result).startswith("beatkeeper: FLOWER_BASIC_AUTH")
    assert result.stdout == ""

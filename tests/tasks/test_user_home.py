"""The user's code is found without variables: task modules in tasks/user/, the schedule in
schedules/user.<ext>; and .env joins make run's environment, the shell winning."""
from __future__ import annotations

import pytest

from schedules.errors import ConfigFileError
from schedules.platform import effective_schedule, user_schedule_path
from tasks.cli.runner import read_dotenv
from tasks.user import user_task_modules


def test_every_module_and_package_in_the_home_is_a_task_module_but_private_ones(tmp_path):
    (tmp_path / "jobs.py").write_text("")
    (tmp_path / "_helpers.py").write_text("")
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "__init__.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert user_task_modules(tmp_path) == ["tasks.user.feeds", "tasks.user.jobs"]


def test_the_user_schedule_file_is_found_by_its_name_and_two_are_refused(tmp_path):
    assert user_schedule_path(tmp_path) == ""
    (tmp_path / "user.yaml").write_text("{}\n")
    assert user_schedule_path(tmp_path) == str(tmp_path / "user.yaml")
    (tmp_path / "user.toml").write_text("")
    with pytest.raises(ConfigFileError, match=r"more than one user schedule file \(user.yaml, user.toml\)"):
        user_schedule_path(tmp_path)


def test_the_variable_overrides_the_home(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("mine:\n  task: beatkeeper.heartbeat\n  every: 60\n")
    assert "mine" in effective_schedule({"BEATKEEPER_SCHEDULE": str(other)})


def test_dotenv_fills_what_the_shell_did_not_set(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# a comment\nBEATKEEPER_TIMEZONE=Australia/Sydney\nREDIS_URL=redis://a:1/0\n"
                        "FLOWER_BASIC_AUTH=\nBEATKEEPER_MIN_INTERVAL='30'\n")
    environ = {"REDIS_URL": "redis://shell:2/0"}
    assert read_dotenv(env_file, environ) == ["BEATKEEPER_TIMEZONE", "BEATKEEPER_MIN_INTERVAL"]
    assert environ == {"REDIS_URL": "redis://shell:2/0", "BEATKEEPER_TIMEZONE": "Australia/Sydney",
                       "BEATKEEPER_MIN_INTERVAL": "30"}
    assert read_dotenv(tmp_path / "missing", environ) == []

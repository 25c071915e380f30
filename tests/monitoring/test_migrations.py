"""The history schema: Alembic migrations run programmatically, match the models, and the
database settings (default SQLite in WAL mode under the data dir)."""
from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect, text

from monitoring.db import HistorySettingError, database_url, engine_for, history_days
from monitoring.migrations import (VERSION_TABLE, alembic_config, current_revision, full_metadata, head_revision,
                                   upgrade_database)


def test_upgrade_creates_the_table_at_head_and_a_second_run_changes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = engine_for(url)
    assert current_revision(engine) is None
    assert upgrade_database(url) == head_revision()
    assert upgrade_database(url) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"beatkeeper_task_runs", VERSION_TABLE} <= tables and "alembic_version" not in tables


def test_the_migrations_build_exactly_the_models_schema(history_url):
    with engine_for(history_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, full_metadata()) == []


def test_downgrade_to_base_removes_the_table(sqlite_url):
    engine = engine_for(sqlite_url)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(engine).get_table_names()) == {VERSION_TABLE}
    upgrade_database(sqlite_url)
    assert "beatkeeper_task_runs" in inspect(engine).get_table_names()


def test_sqlite_runs_in_wal_mode(sqlite_url):
    with engine_for(sqlite_url).connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


@pytest.mark.parametrize("environ, expected", [
    pytest.param({"DATABASE_URL": "postgresql://u@db/h", "BEATKEEPER_DATA_DIR": "/d"}, "postgresql://u@db/h",
                 id="database_url_wins"),
    pytest.param({"BEATKEEPER_DATA_DIR": "/srv/bk"}, "sqlite:////srv/bk/history.db", id="sqlite_under_data_dir"),
    pytest.param({"DATABASE_URL": "  "}, f"sqlite:///{Path('var/history.db').resolve()}",
                 id="default_data_dir_is_var"),
])
def test_database_url_from_environment(environ, expected):
    assert database_url(environ) == expected


def test_the_default_sqlite_file_and_its_directory_are_created(tmp_path):
    url = database_url({"BEATKEEPER_DATA_DIR": str(tmp_path / "new" / "var")})
    upgrade_database(url)
    assert (tmp_path / "new" / "var" / "history.db").is_file()


@pytest.mark.parametrize("raw, expected", [
    pytest.param("", 30, id="default_is_30_days"),
    pytest.param("7", 7, id="whole_days"),
])
def test_history_days(raw, expected):
    assert history_days({"BEATKEEPER_HISTORY_DAYS": raw}) == expected


@pytest.mark.parametrize("raw", [pytest.param("0", id="zero_is_refused"),
                                 pytest.param("1.5", id="fraction_is_refused")])
def test_bad_history_days_name_the_variable(raw):
    with pytest.raises(HistorySettingError) as refused:
        history_days({"BEATKEEPER_HISTORY_DAYS": raw})
    assert (refused.value.variable, refused.value.value) == ("BEATKEEPER_HISTORY_DAYS", raw)


def test_db_upgrade_command_migrates_the_configured_database(tmp_path, monkeypatch):
    from tasks.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    upgraded = CliRunner().invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"at revision {head_revision()}" in upgraded.output
    current = CliRunner().invoke(main, ["db", "current"])
    assert "up to date" in current.output
    assert "beatkeeper_task_runs" in inspect(engine_for(url)).get_table_names()

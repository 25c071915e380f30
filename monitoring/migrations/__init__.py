"""The history schema's Alembic migrations, run programmatically (no alembic.ini needed).

``upgrade_database()`` brings the database named by ``DATABASE_URL`` (or the default SQLite
file) to the newest revision; ``beatkeeper db upgrade`` calls it, and the local runner and
the containers run that at start. It is safe to run from several processes at once: the
migration holds a lock for its duration (a Postgres advisory lock, a file lock for SQLite).

A new revision: copy the newest file in ``versions/`` and set ``revision`` and
``down_revision``; keep each revision's table definitions literal (never import models).
"""
from __future__ import annotations

import fcntl
import importlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, text

from monitoring.db import engine_for

MIGRATIONS_DIR = Path(__file__).resolve().parent
#: Modules whose tables join ``monitoring.models.metadata``: the schema the migrations must build.
TABLE_MODULES = ("monitoring.models", "monitoring.pipelines", "monitoring.history_home")
#: Our own version table, so a database shared with another Alembic project does not clash.
VERSION_TABLE = "beatkeeper_alembic_version"
_PG_ADVISORY_LOCK_ID = 0x6B65_6570_6572  # any constant; the same in every process


def full_metadata() -> MetaData:
    """The metadata with every table of :data:`TABLE_MODULES` defined on it."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    from monitoring.models import metadata

    return metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at these migrations, optionally bound to an open connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade_database(url: str | None = None, *, revision: str = "head") -> str | None:
    """Migrate the database at ``url`` (default: from the environment) to ``revision``.

    Returns the revision the database is at afterwards.
    """
    engine = engine_for(url)
    with _migration_lock(engine):
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None before the first upgrade."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head_revision() -> str:
    """The newest revision these migrations define."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_ADVISORY_LOCK_ID})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_ADVISORY_LOCK_ID})
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)

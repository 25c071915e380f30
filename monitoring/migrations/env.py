"""Alembic's entry point for beatkeeper's history schema; see ``monitoring.migrations``."""
from __future__ import annotations

from alembic import context

from monitoring.db import engine_for
from monitoring.migrations import VERSION_TABLE, full_metadata

config = context.config
metadata = full_metadata()


def run_offline() -> None:
    """Emit the SQL instead of running it (``alembic upgrade --sql``)."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      version_table=VERSION_TABLE, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        with engine_for(config.get_main_option("sqlalchemy.url") or None).begin() as connection:
            _migrate(connection)
    else:
        _migrate(connection)


def _migrate(connection) -> None:
    # SQLite cannot ALTER most things in place: batch mode copies the table instead.
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

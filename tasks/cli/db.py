"""``beatkeeper db upgrade``: create or upgrade the history schema (Alembic, run in-process).

The local runner and the containers run it at start; running it again is a no-op.
"""
from __future__ import annotations

import click
from sqlalchemy.engine import make_url

from monitoring.db import database_url, engine_for


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@click.group("db")
def command() -> None:
    """The execution history's database."""


@command.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(revision: str) -> None:
    """Create or upgrade the history tables to the newest revision."""
    from monitoring.migrations import upgrade_database

    url = database_url()
    at = upgrade_database(url, revision=revision)
    click.echo(f"history database {_shown(url)}: at revision {at}")


@command.command("current")
def current() -> None:
    """Show the revision the history database is at."""
    from monitoring.migrations import current_revision, head_revision

    url = database_url()
    at = current_revision(engine_for(url))
    state = "up to date" if at == head_revision() else f"behind (newest is {head_revision()})"
    click.echo(f"history database {_shown(url)}: at revision {at or 'none'}, {state}")

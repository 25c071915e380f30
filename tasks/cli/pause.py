"""``beatkeeper pause NAME`` and ``beatkeeper resume NAME``: stop and restart an entry or a task
at call time, without restarting anything (see ``tasks.guard.pause``)."""
from __future__ import annotations

import getpass
import os
import socket

import click

from tasks import app
from tasks.cli.common import parse_instant, utc_now
from tasks.guard.pause import PauseStore, PauseUntilInPast
from tasks.infra.redis_client import app_redis


def known_names() -> set[str]:
    """Every schedule entry and task name this deployment knows (the raw schedule: no validation)."""
    from schedules.platform import effective_schedule

    app.loader.import_default_modules()
    names = set(app.tasks)
    try:
        names |= set(effective_schedule(os.environ))
    except Exception:  # an unreadable schedule file: `beatkeeper check` reports it; tasks still count
        pass
    return names


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in a container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@click.command("pause")
@click.argument("name")
@click.option("--until", help="Resume by itself at this ISO-8601 instant (naive means UTC).")
@click.option("--reason", default="", help="Why: shown by `beatkeeper status` and in the history.")
@click.option("--by", default=None, help="Who pauses it (default: user@host).")
@click.option("--force", is_flag=True, help="Pause a name that is neither a known entry nor a known task.")
def command(name: str, until: str | None, reason: str, by: str | None, force: bool) -> None:
    """Pause a schedule entry or a task: its runs are skipped (skipped_paused) until resumed."""
    now = utc_now()
    until_at = None if until is None else parse_instant(until, option="--until")
    if not force and name not in known_names():
        raise click.BadParameter(f"{name!r} is neither a schedule entry nor a registered task "
                                 "(--force pauses it anyway)", param_hint="NAME")
    try:
        pause = PauseStore(app_redis(app)).pause(name, now=now.timestamp(),
                                                 until=None if until_at is None else until_at.timestamp(),
                                                 reason=reason, by=by or _who())
    except PauseUntilInPast:
        raise click.BadParameter(f"{until} is not in the future", param_hint="--until") from None
    click.echo(pause.describe())


@click.command("resume")
@click.argument("name")
def resume_command(name: str) -> None:
    """Lift the pause of a schedule entry or a task: its next run executes."""
    if PauseStore(app_redis(app)).resume(name):
        click.echo(f"{name} resumed")
    else:
        click.echo(f"{name} was not paused")


#: Both commands of this module, for the CLI group.
commands = (command, resume_command)

"""``beatkeeper trigger ENTRY``: run a schedule entry now, as a manual run of it (``tasks.actions.trigger``)."""
from __future__ import annotations

from typing import Callable

import click

from tasks import app
from tasks.cli.pause import _who
from tasks.actions.trigger import TriggerError, trigger_entry


@click.command("trigger")
@click.argument("entry")
@click.option("--by", default=None, help="Who runs it (default: user@host); recorded with the run.")
def command(entry: str, by: str | None) -> None:
    """Run ENTRY now with its arguments, queue and policy (overlap, lock, budget), as beat published them.

    The run has a fresh run id and the entry's name: the history and Flower show it as a manual
    run of ENTRY. Prints the task id."""
    send_and_echo(lambda: trigger_entry(app, entry, who=by or _who()))


def send_and_echo(send: Callable[[], str]) -> None:
    """Load the task modules, ``send``, print the task id; a refusal is one line and exit 2."""
    app.loader.import_default_modules()
    try:
        task_id = send()
    except TriggerError as exc:
        click.echo(f"beatkeeper: {exc}", err=True)
        raise click.exceptions.Exit(2) from None
    click.echo(task_id)

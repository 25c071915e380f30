"""``beatkeeper trigger ENTRY``: run a schedule entry now, as a manual run of it (``tasks.trigger``)."""
from __future__ import annotations

import click

from tasks import app
from tasks.cli.pause import _who
from tasks.trigger import TriggerError, trigger_entry


@click.command("trigger")
@click.argument("entry")
@click.option("--by", default=None, help="Who runs it (default: user@host); recorded with the run.")
def command(entry: str, by: str | None) -> None:
    """Run ENTRY now with its arguments, queue and policy (overlap, lock, budget), as beat published them.

    The run has a fresh run id and the entry's name: the history and Flower show it as a manual
    run of ENTRY. Prints the task id."""
    app.loader.import_default_modules()
    try:
        task_id = trigger_entry(app, entry, who=by or _who())
    except TriggerError as exc:
        click.echo(f"beatkeeper: {exc}", err=True)
        raise click.exceptions.Exit(2) from None
    click.echo(task_id)

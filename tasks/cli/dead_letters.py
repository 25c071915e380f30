"""``beatkeeper dead-letters``: the runs whose workers kept dying (``tasks.guard.identity``), newest
first; ``--requeue ID`` sends one again as a manual run (``tasks.actions.trigger``)."""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone

import click

from tasks import app
from tasks.cli.pause import _who
from tasks.guard.identity import dead_letters
from tasks.infra.redis_client import app_redis
from tasks.cli.trigger import send_and_echo
from tasks.actions.trigger import requeue_dead_letter


@click.command("dead-letters")
@click.option("--requeue", "requeue_id", metavar="ID", default=None,
              help="Send this dead letter (its run id or task id) again, as a manual run; it leaves the list.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--by", default=None, help="Who requeues (default: user@host).")
def command(requeue_id: str | None, limit: int, as_json: bool, by: str | None) -> None:
    """List dead-lettered runs (newest first), or requeue one."""
    if requeue_id is not None:
        send_and_echo(lambda: requeue_dead_letter(app, requeue_id, who=by or _who()))
        return
    letters = dead_letters(app_redis(app), limit=limit)
    for letter in letters:
        if as_json:
            click.echo(json.dumps(asdict(letter), sort_keys=True, default=str))
            continue
        at = datetime.fromtimestamp(letter.at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(f"{at}  {letter.run_id}  task={letter.task} deaths={letter.deaths}/{letter.max_redeliveries} "
                   f"args={json.dumps(letter.args)} kwargs={json.dumps(letter.kwargs, sort_keys=True)}")
    if not letters and not as_json:
        click.echo("no dead letters", err=True)

"""``beatkeeper history``: the execution history, newest first, as a table or JSON.

Records still spooled in Redis are drained first (best effort), so a run that just ended
shows up even when no worker drained since.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click
from sqlalchemy.exc import SQLAlchemyError

from monitoring.history import RUN_STATUSES, RunRecord
from tasks import app
from tasks.cli import EXIT_UNREACHABLE
from tasks.cli.common import parse_instant
from tasks.infra.errors import infra_error_line

COLUMNS = ("finished (UTC)", "status", "task", "entry", "try", "late s", "took s", "host", "detail")
DETAIL_WIDTH = 60


@click.command("history")
@click.option("--task", help="Only runs of this task.")
@click.option("--entry", help="Only runs of this schedule entry ('' for runs triggered by hand).")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs that ended so.")
@click.option("--since", help="Only runs finished at or after this ISO-8601 instant (naive means UTC).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as a JSON list.")
def command(task: str | None, entry: str | None, status: str | None, since: str | None, limit: int,
            as_json: bool) -> None:
    """Show recorded runs, newest first."""
    since_at = None if since is None else parse_instant(since, option="--since")
    store = app.beatkeeper.history
    unreachable = None
    try:
        store.drain()
        _home_refusal_logged(store)
    except Exception as exc:  # Redis down: say so first, show what SQL already holds, exit 3
        unreachable = infra_error_line(exc) or f"could not drain spooled records: {type(exc).__name__}: {exc}"
        click.echo(f"beatkeeper: {unreachable} (runs still spooled there are not shown)", err=True)
    records = store.query(task=task, entry=entry, status=status, since=since_at, limit=limit)
    if as_json:
        click.echo(json.dumps([to_json(r) for r in records], indent=2))
    elif not records:
        click.echo("no runs recorded" + (" matching the filters" if any((task, entry, status, since)) else ""))
    else:
        click.echo(render_table(records))
    if unreachable is not None:
        click.get_current_context().exit(EXIT_UNREACHABLE)


def to_json(record: RunRecord) -> dict:
    """One record as JSON: instants in ISO-8601 UTC, lateness and duration in seconds."""
    data = json.loads(record.to_json())
    data["lateness_s"] = record.lateness_s
    data["duration_s"] = record.duration_s
    return data


def render_table(records: list[RunRecord]) -> str:
    rows = [COLUMNS] + [_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _row(record: RunRecord) -> tuple[str, ...]:
    detail = ": ".join(p for p in (record.error_type, record.error_message) if p) or record.reason or ""
    detail = " ".join(detail.split())
    if len(detail) > DETAIL_WIDTH:
        detail = detail[:DETAIL_WIDTH - 3] + "..."
    return (_instant(record.finished_at), record.status, record.task_name, record.entry or "-", str(record.attempt),
            _seconds(record.lateness_s), _seconds(record.duration_s), record.hostname or "-", detail)


def _instant(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _home_refusal_logged(store) -> None:
    """A database that is not the deployment's holds none of its history: the store logs why, once
    (``monitoring.history_home``); asked even with nothing spooled."""
    try:
        store.home_refusal()
    except (SQLAlchemyError, LookupError):  # the database's own trouble: the query below says it
        pass

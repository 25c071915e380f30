"""``beatkeeper import``: a Celery ``beat_schedule`` or django-celery-beat's tables -> a
schedule file ``check`` accepts, and per entry what will behave differently under beatkeeper
(both schedules run side by side over the window, a year by default).

Exit 0 when every entry was imported; 1 when some were refused (one line each, on stderr; the
others are still written) or the written file has problems ``check`` would report.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import click
import yaml
from celery import Celery

from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule
from schedules.zones import is_valid_timezone
from tasks.cli.common import parse_instant, utc_now
from tasks.importers.celery_entries import ImportResult, convert_beat_schedule
from tasks.importers.django_beat import read_django_celery_beat
from tasks.importers.side_by_side import report_lines
from tasks.importers.zones import zone_object

DEFAULT_DAYS = 366


@click.command("import")
@click.option("--from-celery", "celery_source", metavar="MODULE:ATTR",
              help="A Celery app (its conf.beat_schedule) or a beat_schedule dict, e.g. proj.celery:app.")
@click.option("--from-django-celery-beat", "database_url", metavar="DATABASE_URL",
              help="The database holding django-celery-beat's tables (SQLAlchemy URL).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the schedule (YAML) here; default: standard output (the report then goes to stderr).")
@click.option("--timezone", "zone", default=None,
              help="The app's timezone for crontabs without their own (default: the app's, else UTC).")
@click.option("--start", help="Start of the compared window, ISO-8601 (naive means UTC). Default: now.")
@click.option("--days", type=click.IntRange(min=1), default=DEFAULT_DAYS, show_default=True,
              help="Length of the compared window in days.")
def command(celery_source: str | None, database_url: str | None, out_path: Path | None, zone: str | None,
            start: str | None, days: int) -> None:
    """Import a Celery or django-celery-beat schedule; report what will behave differently."""
    if (celery_source is None) == (database_url is None):
        raise click.UsageError("give one of --from-celery MODULE:ATTR or --from-django-celery-beat DATABASE_URL")
    if zone is not None and not is_valid_timezone(zone):
        raise click.BadParameter(f"unknown time zone {zone!r} (expected an IANA name such as 'Europe/London')",
                                 param_hint="--timezone")
    now = utc_now()
    start_at = now if start is None else parse_instant(start, option="--start")
    end_at = start_at + timedelta(days=days)
    if celery_source is not None:
        result = _from_celery(celery_source, zone)
        source = celery_source
    else:
        result = read_django_celery_beat(database_url, now=start_at)
        source = "django-celery-beat"
    entries = {name: imported.entry for name, imported in result.imported.items()}
    text = f"# imported by `beatkeeper import` from {source}\n" + yaml.safe_dump(
        entries, sort_keys=False, default_flow_style=False, allow_unicode=True)
    if out_path is None:
        click.echo(text, nl=False)
    else:
        try:
            out_path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(out_path), hint=exc.strerror or str(exc)) from None
    say = (lambda line: click.echo(line, err=True)) if out_path is None else click.echo
    for line in result.refused:
        click.echo(line, err=True)
    validated = validate_schedule(entries, settings=ScheduleSettings.from_env(os.environ), registered_tasks=None,
                                  now=start_at)  # ScheduleConfigError: the CLI prints each problem, exit 1
    for name, imported in result.imported.items():
        for line in report_lines(name, imported, validated.entries[name], start_at, end_at):
            say(line)
    say(f"imported {len(entries)} of {len(entries) + len(result.refused)} entries"
        f"{'' if out_path is None else f' into {out_path}'}; compared {start_at.date()} .. {end_at.date()}")
    if result.refused:
        raise click.exceptions.Exit(1)  # refusals already printed, one line each


def _from_celery(source: str, zone: str | None) -> ImportResult:
    module_name, _, attribute = source.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter(f"{source!r} is not MODULE:ATTR (e.g. proj.celery:app)", param_hint="--from-celery")
    if os.getcwd() not in sys.path:  # the console script does not put the working directory on the path
        sys.path.insert(0, os.getcwd())
    try:
        found = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:  # the user's module: any failure to load it is one line
        raise click.BadParameter(f"cannot read {source}: {type(exc).__name__}: {exc}",
                                 param_hint="--from-celery") from None
    if isinstance(found, Celery):
        beat_schedule, app_zone = found.conf.beat_schedule or {}, found.timezone
    elif isinstance(found, Mapping):
        beat_schedule, app_zone = found, "UTC"
    else:
        raise click.BadParameter(f"{source} is a {type(found).__name__}, not a Celery app or a beat_schedule dict",
                                 param_hint="--from-celery")
    return convert_beat_schedule(beat_schedule, app_zone=zone_object(zone) if zone else app_zone)

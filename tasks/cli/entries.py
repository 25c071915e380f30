"""``beatkeeper entries put|rm|ls``: dynamic entries from the command line (``tasks.dynamic_entries``).

``put`` refuses what ``beatkeeper check`` would, with check's line(s) on stderr and exit 1.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from schedules.loader import load_schedule_file
from tasks import app
from tasks.dynamic_entries import DynamicEntries, EntryRefused

EXIT_REFUSED = 1  # as check's exit for a schedule with problems


@click.group("entries")
def command() -> None:
    """Add, replace, remove and list dynamic schedule entries (beat picks changes up live)."""


@command.command("put")
@click.argument("name")
@click.option("--json", "spec_json", help="The entry as JSON (the keys a schedule file entry takes).")
@click.option("--file", "spec_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The entry in a file (.yaml, .json, .toml): the keys a schedule file entry takes.")
def put_command(name: str, spec_json: str | None, spec_file: Path | None) -> None:
    """Add NAME, or replace it (its old instants never fire)."""
    if (spec_json is None) == (spec_file is None):
        raise click.UsageError("give the entry with exactly one of --json or --file")
    if spec_json is not None:
        try:
            spec = json.loads(spec_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--json") from None
    else:
        spec = load_schedule_file(spec_file)
    try:
        DynamicEntries.for_app(app).put(name, spec)
    except EntryRefused as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(EXIT_REFUSED) from None
    click.echo(f"{name}: stored")


@command.command("rm")
@click.argument("name", required=False)
@click.option("--prefix", help="Remove every dynamic entry whose name starts with this.")
def rm_command(name: str | None, prefix: str | None) -> None:
    """Remove NAME, or every entry under --prefix."""
    if (name is None) == (prefix is None):
        raise click.UsageError("give exactly one of NAME or --prefix")
    if not (name or prefix):
        raise click.BadParameter("must not be empty (it would remove every dynamic entry)", param_hint="--prefix")
    entries = DynamicEntries.for_app(app)
    if prefix is not None:
        click.echo(f"{entries.remove_prefix(prefix)} removed")
    elif entries.remove(name):
        click.echo(f"{name}: removed")
    else:
        click.echo(f"{name}: no such dynamic entry", err=True)
        raise SystemExit(EXIT_REFUSED)


@command.command("ls")
@click.option("--prefix", default="", help="Only the names starting with this.")
@click.option("--json", "as_json", is_flag=True, help="Print {name: spec} as JSON.")
def ls_command(prefix: str, as_json: bool) -> None:
    """List the dynamic entries (names, sorted)."""
    entries = DynamicEntries.for_app(app)
    names = entries.names(prefix)
    if as_json:
        click.echo(json.dumps({name: entries.get(name) for name in names}, indent=2, sort_keys=True))
        return
    for name in names:
        click.echo(name)

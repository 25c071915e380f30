"""``beatkeeper check``: validate the schedule; one summary line per entry, or every problem.

Exit 0 when valid (warnings go to stderr), 1 with the problems one per line on stderr,
2 for a usage error or a file that cannot be read.
"""
from __future__ import annotations

from pathlib import Path

import click

from schedules.durations import format_seconds
from schedules.entry import EntrySpec
from tasks.cli.common import LoadedSchedule, config_option, load_schedule, local_and_utc, utc_now


@click.command("check")
@config_option
def command(config_path: Path | None) -> None:
    """Validate the schedule and summarise each entry."""
    loaded = load_schedule(config_path, now=utc_now())
    for warning in loaded.schedule.warnings:
        click.echo(f"warning: {warning}", err=True)
    for name, spec in loaded.schedule.entries.items():
        click.echo(summary_line(name, spec, loaded))
    click.echo(
        f"ok: {_count(len(loaded.schedule.entries), 'entry', 'entries')} valid in {loaded.source} "
        f"({len(loaded.kept)} registered, {len(loaded.left_out)} left out, "
        f"{_count(len(loaded.schedule.warnings), 'warning', 'warnings')}); fingerprint {loaded.fingerprint[:16]}"
    )


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def summary_line(name: str, spec: EntrySpec, loaded: LoadedSchedule) -> str:
    """``name: task, schedule; next <local> (<utc>); N runs/hour peak`` (or why it is left out)."""
    head = f"{name}: {spec.task}, {spec.trigger.describe()}"
    if name in loaded.left_out:
        return f"{head}; LEFT OUT: {loaded.left_out[name]}"
    following = spec.trigger.next_fire_after(loaded.now)
    when = "never fires again" if following is None else f"next {local_and_utc(following, spec.timezone)}"
    return f"{head}; {when}; {format_seconds(spec.trigger.peak_runs_per_hour())} runs/hour peak"

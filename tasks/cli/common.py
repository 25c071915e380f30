"""What every schedule command shares: the ``--config`` option, loading and validating the
schedule exactly as beat does, and reading instants given on the command line."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click

from schedules.entry import EntrySpec
from schedules.fingerprint import fingerprint
from schedules.killswitch import partition_enabled
from schedules.loader import load_schedule_file
from schedules.validate import ValidatedSchedule
from schedules.zones import zone
from tasks import app
from tasks.beat.schedule_source import load_validated_schedule

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Schedule file (.py with SCHEDULE, .json, .yaml/.yml, .toml). "
         "Default: the platform's schedule plus schedules/user.yaml (or BEATKEEPER_SCHEDULE's file), as beat loads it.",
)


@dataclass(frozen=True)
class LoadedSchedule:
    """A validated schedule and what the kill switches of this environment make of it."""

    source: str
    schedule: ValidatedSchedule
    kept: dict[str, EntrySpec]
    left_out: dict[str, str]
    now: datetime

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.kept)


def load_schedule(config_path: Path | None, *, now: datetime) -> LoadedSchedule:
    """Load and validate the schedule (raises ScheduleConfigError / ConfigFileError / SettingsError)."""
    raw = None if config_path is None else load_schedule_file(config_path)
    schedule = load_validated_schedule(app, environ=os.environ, raw=raw, now=now)
    kept, left_out = partition_enabled(schedule, os.environ)
    source = str(config_path) if config_path is not None else "the platform schedule"
    return LoadedSchedule(source, schedule, kept, left_out, now)


def utc_now() -> datetime:
    """The one clock read of a command: everything below takes ``now`` as a parameter."""
    return datetime.now(timezone.utc)


def parse_instant(text: str, *, option: str) -> datetime:
    """An ISO-8601 instant from the command line; naive means UTC. Bad input is a usage error (exit 2)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 date-time such as 2026-10-04T03:00+11:00",
                                 param_hint=option) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def local_and_utc(instant: datetime, zone_name: str) -> str:
    """``2026-10-04T03:00:00+11:00 (2026-10-03T16:00:00Z)``."""
    local = instant.astimezone(zone(zone_name)).isoformat()
    utc = instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{local} ({utc})"

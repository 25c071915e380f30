"""The settings schedule validation depends on, read from an environment mapping.

| variable                      | default | meaning                                          |
|-------------------------------|---------|--------------------------------------------------|
| BEATKEEPER_TIMEZONE           | UTC     | zone of cron/at/windows entries without one      |
| BEATKEEPER_MIN_INTERVAL       | 10 (s)  | smallest gap allowed between two fires of entry  |
| BEATKEEPER_MAX_RUNS_PER_HOUR  | 1000    | default per-task budget of projected runs/hour   |
| BEATKEEPER_DISABLE            | (none)  | comma-separated entry names left out at start    |
| <NAME>_SCHEDULER_DISABLED     | (none)  | 1/true/yes/on leaves entry <name> out            |
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from schedules import killswitch
from schedules.durations import parse_duration_s
from schedules.errors import DurationError, SettingsError
from schedules.zones import is_valid_timezone

DEFAULT_TIMEZONE = "UTC"
DEFAULT_MIN_INTERVAL_S = 10.0
DEFAULT_MAX_RUNS_PER_HOUR = 1000


@dataclass(frozen=True)
class ScheduleSettings:
    """What validation needs from the deployment; build it with :meth:`from_env`."""

    timezone: str = DEFAULT_TIMEZONE
    min_interval_s: float = DEFAULT_MIN_INTERVAL_S
    max_runs_per_hour: int = DEFAULT_MAX_RUNS_PER_HOUR
    disabled_names: frozenset[str] = frozenset()
    #: ``<NAME>_SCHEDULER_DISABLED`` variables that are switched on (the entry names
    #: they stand for are not recoverable, so the variable names are kept).
    switched_off_variables: frozenset[str] = field(default=frozenset())

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ScheduleSettings:
        """Settings from ``environ`` (pass ``os.environ``); raises :class:`SettingsError` on a bad value."""
        timezone = (environ.get("BEATKEEPER_TIMEZONE") or DEFAULT_TIMEZONE).strip()
        if not is_valid_timezone(timezone):
            raise SettingsError("BEATKEEPER_TIMEZONE", timezone, "not an IANA time zone such as 'Australia/Sydney'")
        return cls(
            timezone=timezone,
            min_interval_s=_min_interval_s(environ.get("BEATKEEPER_MIN_INTERVAL")),
            max_runs_per_hour=_max_runs_per_hour(environ.get("BEATKEEPER_MAX_RUNS_PER_HOUR")),
            disabled_names=killswitch.disabled_names_from_env(environ),
            switched_off_variables=killswitch.switched_off_variables(environ),
        )


def _min_interval_s(raw: str | None) -> float:
    if not raw:
        return DEFAULT_MIN_INTERVAL_S
    try:
        seconds = parse_duration_s(raw)
    except DurationError as exc:
        raise SettingsError("BEATKEEPER_MIN_INTERVAL", raw, exc.reason) from None
    if seconds < 0:
        raise SettingsError("BEATKEEPER_MIN_INTERVAL", raw, "must not be negative")
    return seconds


def _max_runs_per_hour(raw: str | None) -> int:
    if not raw:
        return DEFAULT_MAX_RUNS_PER_HOUR
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # int() would read '３' as 3
        raise SettingsError("BEATKEEPER_MAX_RUNS_PER_HOUR", raw,
                            "expected a whole number of runs (at most 18 digits 0-9)")
    runs = int(text)
    if runs <= 0:
        raise SettingsError("BEATKEEPER_MAX_RUNS_PER_HOUR", raw, "must be greater than 0")
    return runs

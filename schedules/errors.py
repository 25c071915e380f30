"""Every exception the schedules package raises, each carrying the data behind its message.

A configuration mistake is reported as :class:`Problem` lines, never a traceback:
``entry 'gtfs-rt-poll': every: 0.1 s is below the minimum interval of 10 s``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class BeatkeeperScheduleError(Exception):
    """Base of every error raised by the schedules package."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a schedule, rendered as one line.

    ``entry`` is None for a problem of the schedule as a whole (a task's budget,
    a top level that is not a mapping); ``field`` is None when no single key is at fault.
    """

    entry: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = "schedule" if self.entry is None else f"entry '{self.entry}'"
        if self.field is None:
            return f"{where}: {self.message}"
        return f"{where}: {self.field}: {self.message}"


class ScheduleConfigError(BeatkeeperScheduleError):
    """A schedule that cannot be registered; carries every problem found, in entry order."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InvalidValue(BeatkeeperScheduleError, ValueError):
    """A value an entry key refuses; ``problems`` are (sub-field or "", message) pairs.

    Raised by the per-key converters of ``schedules.entry`` and turned into
    :class:`Problem` lines by validation; never escapes ``validate_schedule``.
    """

    def __init__(self, message: str, *, at: str = ""):
        self.problems: list[tuple[str, str]] = [(at, message)]
        super().__init__(message)

    @classmethod
    def many(cls, problems: list[tuple[str, str]]) -> InvalidValue:
        error = cls(problems[0][1], at=problems[0][0])
        error.problems = list(problems)
        return error


class ConfigFileError(BeatkeeperScheduleError):
    """A schedule file that cannot be read or parsed (the CLI exits 2)."""

    def __init__(self, path: str | Path, reason: str, *, line: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {reason}")


class DurationError(BeatkeeperScheduleError, ValueError):
    """A value that is not a duration; ``value`` is what was given."""

    def __init__(self, value: object, reason: str):
        self.value = value
        self.reason = reason
        super().__init__(reason)


class SettingsError(BeatkeeperScheduleError, ValueError):
    """An environment variable with a value beatkeeper cannot use (schedule, history, monitor,
    GTFS settings alike subclass it, so the CLI reports any of them as one line, exit 2)."""

    def __init__(self, variable: str, value: str, reason: str):
        self.variable = variable
        self.value = value
        self.reason = reason
        super().__init__(f"{variable}={value!r}: {reason}")

    @property
    def problem(self) -> str:
        return self.reason


class TriggerDecodeError(BeatkeeperScheduleError, ValueError):
    """A stored trigger dict that does not describe a trigger; ``data`` is what was read."""

    def __init__(self, data: object, reason: str):
        self.data = data
        self.reason = reason
        super().__init__(f"cannot decode trigger {data!r}: {reason}")

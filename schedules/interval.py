"""IntervalTrigger: a fixed real-time grid, ``phase + k * every`` from the Unix epoch.

The grid is anchored to the epoch, not to the last run, so it never drifts and two
processes agree on it without talking. It ignores time zones and DST entirely. All
arithmetic is on integer microseconds: ``every_s=0.1`` fires exactly every 100000 us
for ever, with no accumulating float error.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from schedules.durations import format_duration
from schedules.trigger import (
    US_PER_S,
    Trigger,
    from_epoch_us,
    require_aware,
    seconds_to_us,
    to_epoch_us,
)


class IntervalTrigger(Trigger):
    """Fires at ``phase_s + k * every_s`` seconds after the epoch, for every integer k."""

    def __init__(self, every_s: float, *, phase_s: float = 0.0):
        every_us = seconds_to_us(every_s, name="every_s")
        if every_us <= 0:
            raise ValueError(f"every_s must be at least 1 microsecond, got {every_s}")
        self.every_s = every_s
        self.phase_s = phase_s
        self.every_us = every_us
        # Normalised into [0, every): only the residue matters for the grid.
        self.phase_us = seconds_to_us(phase_s, name="phase_s") % every_us

    # -- integer core, shared with WindowsTrigger -------------------------------------------
    def first_at_or_after_us(self, epoch_us: int) -> int:
        """The smallest grid point >= ``epoch_us``."""
        k = -((self.phase_us - epoch_us) // self.every_us)  # ceil((t - phase) / every)
        return self.phase_us + k * self.every_us

    def last_before_us(self, epoch_us: int) -> int:
        """The largest grid point < ``epoch_us``."""
        k = (epoch_us - 1 - self.phase_us) // self.every_us
        return self.phase_us + k * self.every_us

    def count_in_us(self, start_us: int, end_us: int) -> int:
        """How many grid points lie in ``[start_us, end_us)``."""
        if end_us <= start_us:
            return 0
        first = self.first_at_or_after_us(start_us)
        if first >= end_us:
            return 0
        return (end_us - 1 - first) // self.every_us + 1

    # -- Trigger -----------------------------------------------------------------------------
    def next_fire_after(self, after: datetime) -> datetime:
        return from_epoch_us(self.first_at_or_after_us(to_epoch_us(after) + 1))

    def fires_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        require_aware(start, "start")
        fire_us = self.first_at_or_after_us(to_epoch_us(start))
        end_us = to_epoch_us(end)
        while fire_us < end_us:
            yield from_epoch_us(fire_us)
            fire_us += self.every_us

    def min_gap_s(self, start: datetime, end: datetime) -> float | None:
        """``every_s`` when the window holds two grid points, else None."""
        if self.count_in_us(to_epoch_us(start), to_epoch_us(end)) < 2:
            return None
        return self.every_us / US_PER_S

    def peak_runs_per_hour(self) -> float:
        """The grid's rate, ``3600 / every_s`` (an hour window holds at most its ceiling)."""
        return 3600 * US_PER_S / self.every_us

    def describe(self) -> str:
        text = f"every {format_duration(self.every_us / US_PER_S)}"
        if self.phase_us:
            text += f" (phase {format_duration(self.phase_us / US_PER_S)})"
        return text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntervalTrigger):
            return NotImplemented
        return (self.every_us, self.phase_us) == (other.every_us, other.phase_us)

    def __hash__(self) -> int:
        return hash((IntervalTrigger, self.every_us, self.phase_us))

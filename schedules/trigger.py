"""The Trigger interface: a schedule kind as a value that knows its fire instants.

A trigger has no clock and does no I/O: every question is asked relative to instants the
caller passes in. Instants are aware datetimes; answers are aware datetimes in UTC.
Internally triggers work on integer epoch seconds or microseconds, so arithmetic is exact.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

UTC = timezone.utc

#: How far ``next_fire_after`` looks before answering None. A Feb-29 entry can wait
#: 8 years (2096 -> 2104 skips the non-leap 2100), so 8 years and a month covers it.
HORIZON = timedelta(days=8 * 366 + 31)
HORIZON_S = HORIZON.days * 86400

US_PER_S = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def require_aware(value: datetime, name: str = "instant") -> None:
    """Raise ValueError for a naive datetime (its instant would depend on the host's zone)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def to_epoch_us(value: datetime) -> int:
    """Exact integer microseconds since the Unix epoch of an aware datetime."""
    require_aware(value)
    return (value - _EPOCH) // _ONE_US


def from_epoch_us(epoch_us: int) -> datetime:
    """The UTC datetime ``epoch_us`` microseconds after the epoch (exact, no float)."""
    return _EPOCH + timedelta(microseconds=epoch_us)


def from_epoch_s(epoch_s: int) -> datetime:
    """The UTC datetime ``epoch_s`` whole seconds after the epoch."""
    return _EPOCH + timedelta(seconds=epoch_s)


def seconds_to_us(seconds: float, *, name: str) -> int:
    """``seconds`` rounded to whole microseconds (the resolution of every grid)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(seconds).__name__}")
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {seconds}")
    if isinstance(seconds, int):
        return seconds * US_PER_S
    return round(seconds * US_PER_S)


class Trigger(ABC):
    """A schedule kind as a value: knows its fire instants, nothing else (no clock, no I/O)."""

    @abstractmethod
    def next_fire_after(self, after: datetime) -> datetime | None:
        """The smallest fire instant strictly after ``after``; None if none within HORIZON."""

    def fires_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Fire instants in ``[start, end)``, ascending."""
        require_aware(start, "start")
        require_aware(end, "end")
        cursor = start - _ONE_US  # fires are > cursor, i.e. >= start
        while True:
            fire = self.next_fire_after(cursor)
            if fire is None or fire >= end:
                return
            yield fire
            cursor = fire

    def min_gap_s(self, start: datetime, end: datetime) -> float | None:
        """Smallest gap between consecutive fires within ``[start, end)``; None if < 2 fires.

        This generic version enumerates every fire; subclasses answer analytically.
        """
        best: int | None = None
        previous: datetime | None = None
        for fire in self.fires_between(start, end):
            if previous is not None:
                gap_us = (fire - previous) // _ONE_US
                best = gap_us if best is None else min(best, gap_us)
            previous = fire
        return None if best is None else best / US_PER_S

    @abstractmethod
    def peak_runs_per_hour(self) -> float:
        """The most fires any one hour can hold (the budget guard sums these)."""

    @abstractmethod
    def describe(self) -> str:
        """A short human summary, e.g. "every 15s" or "cron '30 2 * * *' Australia/Sydney"."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

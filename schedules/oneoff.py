"""AtTrigger: fire once, at one instant.

Built from an aware datetime, or with :meth:`AtTrigger.from_local` from a local wall time
in a zone, resolved by the fixed-time rule of ``schedules.cron``: a wall time inside a
spring-forward gap fires at the first instant after the gap; an ambiguous one (fall-back)
at its first occurrence.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from schedules.trigger import US_PER_S, UTC, Trigger, from_epoch_us, require_aware, to_epoch_us
from schedules.zones import resolve_wall_time_s, zone

_NAIVE_EPOCH = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)


class AtTrigger(Trigger):
    """Fires once, at ``at``.

    ``timezone`` and ``local_time`` record where the instant came from (for DST reports);
    they do not change the instant.
    """

    def __init__(self, at: datetime, *, timezone: str = "UTC", local_time: datetime | None = None):
        require_aware(at, "at")
        zone(timezone)
        self.at = at.astimezone(UTC)
        self.at_us = to_epoch_us(at)
        self.timezone = timezone
        self.local_time = local_time
        self.resolution = "exact"  # from_local sets 'gap' or 'repeated' when DST was involved

    @classmethod
    def from_local(cls, when: datetime, *, timezone: str) -> AtTrigger:
        """A one-off at local wall time ``when`` in ``timezone`` (an aware ``when`` is used as is)."""
        if not isinstance(when, datetime):
            raise TypeError(f"when must be a datetime, got {type(when).__name__}")
        if when.tzinfo is not None:
            return cls(when, timezone=timezone)
        zone(timezone)
        wall_us = (when - _NAIVE_EPOCH) // _ONE_US
        wall_s, fraction_us = divmod(wall_us, US_PER_S)
        instant_s, how = resolve_wall_time_s(timezone, wall_s)
        # A gap resolves to the transition instant itself; a real wall time keeps its fraction.
        instant_us = instant_s * US_PER_S + (0 if how == "gap" else fraction_us)
        trigger = cls(from_epoch_us(instant_us), timezone=timezone, local_time=when)
        trigger.resolution = how
        return trigger

    def next_fire_after(self, after: datetime) -> datetime | None:
        """``at`` if it is later than ``after`` (however far ahead), else None."""
        return self.at if self.at_us > to_epoch_us(after) else None

    def min_gap_s(self, start: datetime, end: datetime) -> float | None:
        """Always None: one fire has no gap."""
        require_aware(start, "start")
        require_aware(end, "end")
        return None

    def peak_runs_per_hour(self) -> float:
        return 1.0

    def describe(self) -> str:
        text = f"once at {self.at.strftime('%Y-%m-%dT%H:%M:%S')}Z"
        if self.local_time is not None:
            text += f" ({self.local_time.isoformat(sep=' ')} {self.timezone})"
        return text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AtTrigger):
            return NotImplemented
        return self.at_us == other.at_us

    def __hash__(self) -> int:
        return hash((AtTrigger, self.at_us))


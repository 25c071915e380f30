"""CronTrigger: a cron expression evaluated on the wall clock of one time zone.

DST semantics (ISC/Vixie cron's, applied per entry time zone)
-------------------------------------------------------------
An entry is *wildcard* when its minute or hour field begins with ``*`` (``*``, ``*/15``);
otherwise it is *fixed-time*.

* Wildcard entries follow real elapsed time: they fire at every real instant whose local
  wall clock matches. Wall times inside a spring-forward gap never happen, so they do not
  fire; wall times in a fall-back repeat happen twice, so they fire twice
  (``*/30 * * * *`` fires at 02:00 and 02:30 in both repeated hours).
* Fixed-time entries fire once per matching wall time: in a fall-back repeat only at the
  first occurrence; if one or more matching wall times fall inside a spring-forward gap,
  the entry fires once, at the first instant after the gap (on Sydney's spring-forward
  day ``30 2 * * *`` fires at 03:00 AEDT; on its fall-back day once at 02:30 AEDT, not
  again at 02:30 AEST). A regular fire at that same instant coalesces with it.
* Days match by standard cron rules (day-of-month OR day-of-week when both are
  restricted), on the local date of the wall time -- for a wall time inside a gap, the
  date of that nonexistent wall time.
* Overrides: ``gap=skip`` drops matching wall times in a gap, ``gap=shift`` fires once at
  the transition instant; ``repeat=first`` fires only the first occurrence of a repeated
  wall time, ``repeat=both`` fires both. Defaults: wildcard -> skip/both, fixed -> shift/first.

Gaps and repeats are judged by the change of UTC offset, never by the zone's DST flag.
"Repeated" means: the same wall minute already happened at an earlier instant in the
previous 48 hours.

How: between two consecutive transitions the offset is constant, so each such segment is a
plain wall-clock search (``CronExpr.next_wall_match_s``) shifted by the offset.
"""
from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from schedules.cronexpr import EPOCH_ORDINAL, CronExpr
from schedules.trigger import HORIZON_S, US_PER_S, Trigger, from_epoch_s, require_aware, to_epoch_us
from schedules.zones import (
    next_transition_s,
    offset_at_s,
    offset_shifts_s,
    transitions_s,
    zone,
)

#: How far back a wall time counts as "already happened" for repeat=first.
REPEAT_LOOKBACK_S = 48 * 3600


class GapPolicy(StrEnum):
    """What a matching wall time inside a spring-forward gap does."""

    SHIFT = "shift"  # fire once, at the first instant after the gap
    SKIP = "skip"  # do not fire


class RepeatPolicy(StrEnum):
    """What a matching wall time inside a fall-back repeat does."""

    FIRST = "first"  # fire at the first occurrence only
    BOTH = "both"  # fire at both occurrences


def _ceil_s(epoch_us: int) -> int:
    return -(-epoch_us // US_PER_S)


class CronTrigger(Trigger):
    """A cron expression in a time zone, with the DST rules in this module's docstring."""

    def __init__(
        self,
        expr: CronExpr | str,
        *,
        timezone: str = "UTC",
        gap: GapPolicy | str | None = None,
        repeat: RepeatPolicy | str | None = None,
    ):
        if isinstance(expr, str):
            expr = CronExpr.parse(expr)
        elif not isinstance(expr, CronExpr):
            raise TypeError(f"expr must be a CronExpr or a string, got {type(expr).__name__}")
        zone(timezone)  # raises UnknownTimezone early, not at the first fire
        self.expr = expr
        self.timezone = timezone
        self.gap = GapPolicy(gap) if gap is not None else self.default_gap(expr)
        self.repeat = RepeatPolicy(repeat) if repeat is not None else self.default_repeat(expr)

    @staticmethod
    def default_gap(expr: CronExpr) -> GapPolicy:
        """Wildcard entries skip gap wall times; fixed-time entries shift them."""
        return GapPolicy.SKIP if expr.is_wildcard else GapPolicy.SHIFT

    @staticmethod
    def default_repeat(expr: CronExpr) -> RepeatPolicy:
        """Wildcard entries fire in both repeated hours; fixed-time entries only the first."""
        return RepeatPolicy.BOTH if expr.is_wildcard else RepeatPolicy.FIRST

    # -- fire times ----------------------------------------------------------------------------
    def next_fire_after(self, after: datetime) -> datetime | None:
        first_s = to_epoch_us(after) // US_PER_S + 1  # fires are whole seconds, strictly later
        fire_s = self.next_fire_at_or_after_s(first_s, first_s + HORIZON_S)
        return None if fire_s is None else from_epoch_s(fire_s)

    def next_fire_at_or_after_s(self, first_s: int, limit_s: int) -> int | None:
        """The smallest fire instant in ``[first_s, limit_s)`` as epoch seconds, or None."""
        name, expr = self.timezone, self.expr
        shift_gaps = self.gap is GapPolicy.SHIFT
        first_only = self.repeat is RepeatPolicy.FIRST
        t = first_s
        while t < limit_s:
            following = next_transition_s(name, t - 1, limit_s)
            if following is not None and following[0] == t:
                at_t, following = following, next_transition_s(name, t, limit_s)
                if shift_gaps and at_t[2] > at_t[1] and expr.has_wall_match(t + at_t[1], t + at_t[2]):
                    return t  # gap=shift: the skipped wall times fire once, as the gap ends
            segment_end = limit_s if following is None else following[0]
            offset = offset_at_s(name, t)
            wall_end = segment_end + offset
            wall = expr.next_wall_match_s(t + offset, wall_end)
            while wall is not None and first_only:
                seen_until = self._repeated_until(wall, wall - offset)
                if seen_until is None:
                    break
                wall = expr.next_wall_match_s(seen_until, wall_end)
            if wall is not None:
                return wall - offset
            t = segment_end
        return None

    def _repeated_until(self, wall_s: int, instant_s: int) -> int | None:
        """If wall time ``wall_s`` already happened in the 48 h before ``instant_s``, the end
        (exclusive, as wall time) of the earlier stretch it happened in; else None."""
        lookback_s = instant_s - REPEAT_LOOKBACK_S
        if next_transition_s(self.timezone, lookback_s - 1, instant_s + 1) is None:
            return None  # the usual case: no offset change in the last 48 h
        earlier = transitions_s(self.timezone, lookback_s, instant_s + 1)
        for i in range(len(earlier) - 1, -1, -1):
            at_s, before_s, _ = earlier[i]
            stretch_start = earlier[i - 1][0] if i > 0 else lookback_s
            if stretch_start + before_s <= wall_s < at_s + before_s:
                return at_s + before_s
        return None

    # -- guards --------------------------------------------------------------------------------
    def min_gap_s(self, start: datetime, end: datetime) -> float | None:
        """Smallest gap between consecutive fires in ``[start, end)``; None if < 2 fires.

        The offset-free gap comes analytically from the field sets (a lower bound: it may
        be realised on days outside the window); around each transition the real fires are
        looked at, since DST can shrink a gap (``30,59 1,2 * * *`` in Sydney gives 01:59
        -> 03:00 AEDT, one real minute).
        """
        require_aware(start, "start")
        require_aware(end, "end")
        start_s, end_s = _ceil_s(to_epoch_us(start)), _ceil_s(to_epoch_us(end))
        first = self.next_fire_at_or_after_s(start_s, end_s)
        second = None if first is None else self.next_fire_at_or_after_s(first + 1, end_s)
        if first is None or second is None:
            return None
        best = second - first
        name = self.timezone
        first_day = date.fromordinal((start_s + offset_at_s(name, start_s)) // 86400 + EPOCH_ORDINAL)
        last_day = date.fromordinal((end_s - 1 + offset_at_s(name, end_s - 1)) // 86400 + EPOCH_ORDINAL)
        naive = self.expr.naive_min_gap_s(first_day, last_day)
        if naive is not None:
            best = min(best, naive)
        for at_s, _, _ in transitions_s(name, start_s, end_s):
            # Past a transition the offset is constant again, so fires after the second one
            # are spaced as on any day (a skipped repeat only widens a gap). The gaps DST can
            # shrink are: last fire before -> first fire after, and first -> second after.
            previous = self._last_fire_before_s(at_s, start_s, first_step_s=naive or 60)
            first_after = self.next_fire_at_or_after_s(at_s, end_s)
            if first_after is None:
                continue
            if previous is not None:
                best = min(best, first_after - previous)
            second_after = self.next_fire_at_or_after_s(first_after + 1, end_s)
            if second_after is not None:
                best = min(best, second_after - first_after)
        return float(best)

    def _last_fire_before_s(self, before_s: int, floor_s: int, *, first_step_s: int) -> int | None:
        """The largest fire in ``[floor_s, before_s)``, searching back in doubling steps."""
        step_s = max(60, first_step_s)
        while True:
            low_s = max(before_s - step_s, floor_s)
            fire = self.next_fire_at_or_after_s(low_s, before_s)
            if fire is not None:
                while (later := self.next_fire_at_or_after_s(fire + 1, before_s)) is not None:
                    fire = later
                return fire
            if low_s == floor_s:
                return None
            step_s *= 2

    def peak_runs_per_hour(self) -> float:
        """An upper bound on fires in any real hour.

        In a zone with one offset: the number of minute values. A real hour sees each
        minute-of-hour at most once as long as every offset change is a whole number of
        hours -- also across a repeat with repeat=both, since the two occurrences are a
        whole hour apart. A change that is not (Lord Howe's 30 min) can show a minute value
        twice, so the count doubles; gap=shift can add the one fire at the end of a gap.
        """
        minutes = len(self.expr.minutes)
        shifts = offset_shifts_s(self.timezone)
        if not shifts:
            return float(minutes)
        factor = 2 if any(shift % 3600 for shift in shifts) else 1
        one_wall_a_day = len(self.expr.hours) * minutes == 1  # then fires are ~a day apart
        extra = 1 if self.gap is GapPolicy.SHIFT and not one_wall_a_day else 0
        return float(minutes * factor + extra)

    def describe(self) -> str:
        text = f"cron '{self.expr.source}' {self.timezone}"
        if self.gap is not self.default_gap(self.expr):
            text += f" gap={self.gap.value}"
        if self.repeat is not self.default_repeat(self.expr):
            text += f" repeat={self.repeat.value}"
        return text

    def _key(self) -> tuple:
        return (self.expr, self.timezone, self.gap, self.repeat)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronTrigger):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((CronTrigger, *self._key()))

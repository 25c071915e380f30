"""WindowsTrigger: different fixed-rate grids in different local hours and weekdays.

At any instant the window in force is the first whose ``hours`` (local wall hour in the
zone) and ``days_of_week`` (local weekday, 0=Sunday) both match; the last window has
neither and so is the default. Fires are the points of the in-force window's epoch grid
(``phase + k * every``, as IntervalTrigger) while that window is in force. The grids are
real time, so DST only moves the hours at which windows change.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from schedules.durations import format_duration
from schedules.interval import IntervalTrigger
from schedules.trigger import HORIZON_S, US_PER_S, Trigger, from_epoch_us, require_aware, to_epoch_us
from schedules.zones import next_transition_s, offset_at_s, transitions_s, zone

HOUR_US = 3600 * US_PER_S
WEEK_US = 7 * 24 * HOUR_US
WEEK_HOURS = 168
_EPOCH_SLOT = 4 * 24  # 1970-01-01 was a Thursday (weekday 4 with 0=Sunday)
_UNBOUNDED_RUN = 10**9  # hours; "the same window for ever"


def _int_set(values: Iterable[int] | None, *, name: str, low: int, high: int) -> frozenset[int] | None:
    if values is None:
        return None
    result = frozenset(values)
    if not result:
        raise ValueError(f"{name} is empty: the window could never be in force")
    for v in result:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ValueError(f"{name} values must be integers {low}-{high}, got {v!r}")
    return result


def _compact(values: frozenset[int]) -> str:
    """{9,10,11,12,17} -> "9-12,17"."""
    ordered, parts, i = sorted(values), [], 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True)
class Window:
    """A fixed-rate grid that is in force in some local hours / weekdays (None: all)."""

    every_s: float
    hours: frozenset[int] | None = None
    days_of_week: frozenset[int] | None = None  # 0=Sunday..6; 7 is accepted as Sunday
    phase_s: float = 0.0

    def __post_init__(self) -> None:
        hours = _int_set(self.hours, name="hours", low=0, high=23)
        days = _int_set(self.days_of_week, name="days_of_week", low=0, high=7)
        if days is not None and 7 in days:
            days = (days - {7}) | {0}
        object.__setattr__(self, "hours", hours)  # frozen: normalise once, here
        object.__setattr__(self, "days_of_week", days)
        IntervalTrigger(self.every_s, phase_s=self.phase_s)  # validates every_s / phase_s

    @property
    def is_default(self) -> bool:
        """True when the window applies at every hour of every day."""
        return self.hours is None and self.days_of_week is None

    def covers(self, day_of_week: int, hour: int) -> bool:
        """Whether the window matches local weekday ``day_of_week`` (0=Sunday) and ``hour``."""
        return (self.hours is None or hour in self.hours) and (
            self.days_of_week is None or day_of_week in self.days_of_week
        )

    def describe(self) -> str:
        text = f"every {format_duration(self.every_s)}"
        if self.hours is not None:
            text += f" hours {_compact(self.hours)}"
        if self.days_of_week is not None:
            text += f" days {_compact(self.days_of_week)}"
        return text


class WindowsTrigger(Trigger):
    """The in-force window's grid, window chosen by local hour and weekday (see module doc)."""

    def __init__(self, windows: Sequence[Window], *, timezone: str = "UTC"):
        windows = tuple(windows)
        if not windows:
            raise ValueError("at least one window is needed")
        for w in windows:
            if not isinstance(w, Window):
                raise TypeError(f"windows must be Window values, got {type(w).__name__}")
        if not windows[-1].is_default:
            raise ValueError("the last window must have neither hours nor days_of_week (it is the default)")
        zone(timezone)
        self.windows = windows
        self.timezone = timezone
        self.grids = tuple(IntervalTrigger(w.every_s, phase_s=w.phase_s) for w in windows)
        # Which window is in force in each hour of the week (slot = weekday * 24 + hour) and
        # for how many hours from there on: lets a search jump a whole run at a time.
        self._slot_window = tuple(
            next(i for i, w in enumerate(windows) if w.covers(slot // 24, slot % 24)) for slot in range(WEEK_HOURS)
        )
        self._slot_run_hours = _run_lengths(self._slot_window)

    def window_index_at_wall_s(self, wall_s: int) -> int:
        """Index of the window in force at local wall time ``wall_s`` (naive epoch seconds)."""
        return self._slot_window[(wall_s // 3600 + _EPOCH_SLOT) % WEEK_HOURS]

    def runs_us(self, start_us: int, end_us: int) -> Iterator[tuple[int, int, int]]:
        """``(run_start_us, run_end_us, window_index)`` covering [start, end), split at transitions."""
        name, t = self.timezone, start_us
        end_s = -(-end_us // US_PER_S)
        while t < end_us:
            following = next_transition_s(name, t // US_PER_S, end_s + 1)
            segment_end = end_us if following is None else min(end_us, following[0] * US_PER_S)
            offset_us = offset_at_s(name, t // US_PER_S) * US_PER_S
            while t < segment_end:
                hour_index = (t + offset_us) // HOUR_US
                slot = (hour_index + _EPOCH_SLOT) % WEEK_HOURS
                run_end = (hour_index + self._slot_run_hours[slot]) * HOUR_US - offset_us
                run_end = min(run_end, segment_end)
                yield t, run_end, self._slot_window[slot]
                t = run_end

    # -- Trigger -------------------------------------------------------------------------------
    def next_fire_after(self, after: datetime) -> datetime | None:
        first_us = to_epoch_us(after) + 1
        for run_start, run_end, index in self.runs_us(first_us, first_us + HORIZON_S * US_PER_S):
            fire = self.grids[index].first_at_or_after_us(run_start)
            if fire < run_end:
                return from_epoch_us(fire)
        return None

    def min_gap_s(self, start: datetime, end: datetime) -> float | None:
        """Exact smallest gap between consecutive fires in ``[start, end)``; None if < 2 fires.

        Gaps are ``every`` inside a run of one window and (last fire of one run -> first
        fire of the next non-empty run) across run boundaries. When every grid divides a
        week, the pattern repeats weekly between transitions, so a long stretch of one
        offset is examined only for two weeks plus a week at each end.
        """
        require_aware(start, "start")
        require_aware(end, "end")
        start_us, end_us = to_epoch_us(start), to_epoch_us(end)
        best: int | None = None
        previous_last: int | None = None
        for span_start, span_end, carry in self._spans_to_examine(start_us, end_us):
            if not carry:
                previous_last = None  # the gap into this span repeats one already examined
            for run_start, run_end, index in self.runs_us(span_start, span_end):
                grid = self.grids[index]
                first = grid.first_at_or_after_us(run_start)
                if first >= run_end:
                    continue
                last = grid.last_before_us(run_end)
                gaps = [grid.every_us] if last > first else []
                if previous_last is not None:
                    gaps.append(first - previous_last)
                if gaps:
                    best = min(gaps) if best is None else min(best, *gaps)
                previous_last = last
        return None if best is None else best / US_PER_S

    def _spans_to_examine(self, start_us: int, end_us: int) -> list[tuple[int, int, bool]]:
        periodic = all(WEEK_US % grid.every_us == 0 for grid in self.grids)
        if not periodic or end_us - start_us <= 6 * WEEK_US:
            return [(start_us, end_us, True)]
        bounds = [start_us]
        changes = transitions_s(self.timezone, -(-start_us // US_PER_S), end_us // US_PER_S)
        bounds += [at * US_PER_S for at, _, _ in changes]
        bounds.append(end_us)
        spans: list[tuple[int, int, bool]] = []
        examined_offsets: set[int] = set()
        for a, b in zip(bounds, bounds[1:]):
            if b <= a:
                continue
            offset = offset_at_s(self.timezone, a // US_PER_S)
            head_us = WEEK_US if offset in examined_offsets else 2 * WEEK_US
            if b - a <= head_us + 2 * WEEK_US:
                spans.append((a, b, True))
            else:
                examined_offsets.add(offset)
                spans.append((a, a + head_us, True))
                spans.append((b - WEEK_US, b, False))
        return spans

    def peak_runs_per_hour(self) -> float:
        """The fastest window's rate, ``3600 / every_s``."""
        return max(grid.peak_runs_per_hour() for grid in self.grids)

    def describe(self) -> str:
        parts = [w.describe() for w in self.windows[:-1]]
        parts.append(f"otherwise every {format_duration(self.windows[-1].every_s)}")
        return f"windows {self.timezone}: " + "; ".join(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowsTrigger):
            return NotImplemented
        return (self.windows, self.timezone) == (other.windows, other.timezone)

    def __hash__(self) -> int:
        return hash((WindowsTrigger, self.windows, self.timezone))


def _run_lengths(slot_window: tuple[int, ...]) -> tuple[int, ...]:
    """For each hour slot, how many slots from it (wrapping round the week) keep its window."""
    n = len(slot_window)
    boundary = next((s for s in range(n) if slot_window[s] != slot_window[(s + 1) % n]), None)
    if boundary is None:  # one window all week
        return (_UNBOUNDED_RUN,) * n
    runs = [1] * n
    for k in range(1, n):  # walk backward from a boundary: a slot extends its successor's run
        slot = (boundary - k) % n
        if slot_window[slot] == slot_window[(slot + 1) % n]:
            runs[slot] = runs[(slot + 1) % n] + 1
    return tuple(runs)

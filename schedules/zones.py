"""Time zones: cached lookup, and the UTC-offset transitions zoneinfo keeps to itself.

``zoneinfo`` answers "what is the offset at this instant" but has no public list of
transitions, and DST semantics need them. We probe the offset every few hours through a
year and bisect each change to the exact second; the result is cached per (zone, year).

A transition is judged by the change of UTC offset, never by ``dst()``: Europe/Dublin
and Africa/Casablanca have "negative DST", where winter is the flagged period.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schedules.errors import BeatkeeperScheduleError
from schedules.trigger import from_epoch_s, require_aware, to_epoch_us

#: Probe spacing. In the tz database no zone has two transitions within 24 h of each
#: other (checked over every zone's transition list since 1900), so probes 6 h apart
#: cannot miss one; tests compare against hourly probing for 13 zones, 1990-2037.
PROBE_STEP_S = 6 * 3600
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_S = timedelta(seconds=1)
_FIRST_YEAR, _LAST_YEAR = 2, 9998  # fromtimestamp() must stay inside datetime's range


class UnknownTimezone(BeatkeeperScheduleError, ValueError):
    """A time zone name zoneinfo does not know; ``name`` is what was given."""

    def __init__(self, name: object):
        self.name = name
        super().__init__(f"unknown time zone {name!r} (expected an IANA name such as 'Europe/London')")


@lru_cache(maxsize=None)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; raises UnknownTimezone."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise UnknownTimezone(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimezone(name) from None


def is_valid_timezone(name: str) -> bool:
    """Whether ``name`` is a zone zoneinfo can load."""
    try:
        zone(name)
    except UnknownTimezone:
        return False
    return True


@dataclass(frozen=True)
class Transition:
    """A change of UTC offset at instant ``at`` (UTC)."""

    at: datetime
    offset_before_s: int
    offset_after_s: int

    @property
    def kind(self) -> str:
        """'gap' when clocks jump forward (wall times skipped), 'repeat' when they go back."""
        return "gap" if self.offset_after_s > self.offset_before_s else "repeat"

    @property
    def at_s(self) -> int:
        """The instant as integer epoch seconds."""
        return to_epoch_us(self.at) // 1_000_000

    @property
    def shift_s(self) -> int:
        """Size of the jump in seconds (always positive)."""
        return abs(self.offset_after_s - self.offset_before_s)


# -- integer core: transitions as (at_s, offset_before_s, offset_after_s) --------------------
def offset_at_s(name: str, epoch_s: int) -> int:
    """The zone's UTC offset in seconds at the instant ``epoch_s``."""
    return datetime.fromtimestamp(epoch_s, zone(name)).utcoffset() // _ONE_S


def abbreviation_at_s(name: str, epoch_s: int) -> str:
    """The zone's abbreviation at the instant, e.g. 'AEDT' ('+1030' style when it has none)."""
    return datetime.fromtimestamp(epoch_s, zone(name)).tzname() or name


def _year_start_s(year: int) -> int:
    return (date(year, 1, 1).toordinal() - _EPOCH_ORDINAL) * 86400


_TABLE_FIRST_YEAR = 1800
_YEAR_STARTS_S = tuple(_year_start_s(y) for y in range(_TABLE_FIRST_YEAR, 2401))


def year_of_s(epoch_s: int) -> int:
    """The UTC calendar year of an instant."""
    i = bisect_right(_YEAR_STARTS_S, epoch_s)
    if 0 < i < len(_YEAR_STARTS_S):  # a table lookup: this sits on every search's hot path
        return _TABLE_FIRST_YEAR + i - 1
    return date.fromordinal(epoch_s // 86400 + _EPOCH_ORDINAL).year


@lru_cache(maxsize=8192)
def _year_transitions(name: str, year: int) -> tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]:
    """Transitions with ``at`` in the UTC year: (sorted instants, entries)."""
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        return (), ()
    tz = zone(name)

    def offset(epoch_s: int) -> int:
        return datetime.fromtimestamp(epoch_s, tz).utcoffset() // _ONE_S

    start_s, end_s = _year_start_s(year), _year_start_s(year + 1)
    entries: list[tuple[int, int, int]] = []
    # A change at T means offset(T - 1) != offset(T); probing from start-1 catches T == start.
    low = start_s - 1
    low_offset = offset(low)
    while low < end_s - 1:
        high = min(low + PROBE_STEP_S, end_s - 1)
        high_offset = offset(high)
        if high_offset != low_offset:
            a, b = low, high
            while b - a > 1:
                mid = (a + b) // 2
                if offset(mid) == low_offset:
                    a = mid
                else:
                    b = mid
            entries.append((b, low_offset, offset(b)))
        low, low_offset = high, high_offset
    return tuple(e[0] for e in entries), tuple(entries)


def transitions_s(name: str, start_s: int, end_s: int) -> list[tuple[int, int, int]]:
    """Transitions ``(at_s, before_s, after_s)`` with start_s <= at_s < end_s, ascending."""
    found: list[tuple[int, int, int]] = []
    if end_s <= start_s:
        return found
    for year in range(max(year_of_s(start_s), _FIRST_YEAR), min(year_of_s(end_s - 1), _LAST_YEAR) + 1):
        instants, entries = _year_transitions(name, year)
        for at_s, entry in zip(instants, entries):
            if start_s <= at_s < end_s:
                found.append(entry)
    return found


_LOOKAHEAD_YEARS = 10  # covers a HORIZON search (8 years and a month) from any date


@lru_cache(maxsize=8192)
def _first_transition_from_year(name: str, year: int) -> tuple[int, int, int] | None:
    """The first transition in UTC years ``year`` .. ``year + _LOOKAHEAD_YEARS - 1``."""
    for y in range(max(year, _FIRST_YEAR), min(year + _LOOKAHEAD_YEARS, _LAST_YEAR + 1)):
        entries = _year_transitions(name, y)[1]
        if entries:
            return entries[0]
    return None


def next_transition_s(name: str, after_s: int, limit_s: int) -> tuple[int, int, int] | None:
    """The first transition with after_s < at_s < limit_s, or None."""
    year = max(year_of_s(after_s), _FIRST_YEAR)
    last_year = min(year_of_s(limit_s), _LAST_YEAR)
    while year <= last_year:
        instants, entries = _year_transitions(name, year)
        i = bisect_right(instants, after_s)
        if i < len(instants):
            entry = entries[i]
            return entry if entry[0] < limit_s else None
        # Nothing later this year: jump over transition-free years (UTC, Asia/Kolkata) at once.
        entry = _first_transition_from_year(name, year + 1)
        if entry is not None:
            return entry if entry[0] < limit_s else None
        year += 1 + _LOOKAHEAD_YEARS
    return None


def transition_at_s(name: str, epoch_s: int) -> tuple[int, int, int] | None:
    """The transition exactly at ``epoch_s``, if there is one."""
    instants, entries = _year_transitions(name, year_of_s(epoch_s))
    i = bisect_right(instants, epoch_s) - 1
    if i >= 0 and instants[i] == epoch_s:
        return entries[i]
    return None


def transitions(tz: str, start: datetime, end: datetime) -> list[Transition]:
    """All offset changes of zone ``tz`` with ``at`` in ``[start, end)``."""
    require_aware(start, "start")
    require_aware(end, "end")
    zone(tz)
    start_s = -(-to_epoch_us(start) // 1_000_000)  # transitions fall on whole seconds
    end_s = -(-to_epoch_us(end) // 1_000_000)
    return [Transition(from_epoch_s(at), before, after) for at, before, after in transitions_s(tz, start_s, end_s)]


@lru_cache(maxsize=1024)
def offset_shifts_s(name: str) -> frozenset[int]:
    """Sizes (seconds) of the offset differences seen between 1 Jan and 1 Jul, 1970-2040.

    A cheap profile of a zone for estimates (peak runs per hour): empty for a zone that
    kept one offset, {3600} for ordinary DST, {1800} for Australia/Lord_Howe. It samples,
    so it is a heuristic, not a list of transitions.
    """
    tz = zone(name)
    shifts: set[int] = set()
    previous: int | None = None
    for year in range(1970, 2041):
        for month in (1, 7):
            instant = datetime(year, month, 1, 12).replace(tzinfo=tz)
            current = instant.utcoffset() // _ONE_S
            if previous is not None and current != previous:
                shifts.add(abs(current - previous))
            previous = current
    return frozenset(shifts)


def resolve_wall_time_s(name: str, wall_s: int) -> tuple[int, str]:
    """The instant of a local wall time (naive epoch seconds) by the fixed-time rule.

    Returns ``(instant_s, how)``: how is 'exact' for a wall time that happens once,
    'repeated' when it happens twice (the first occurrence is returned) and 'gap' when it
    never happens (the first instant after the gap is returned).
    """
    # Offsets stay within +-26 h, so every instant showing this wall time is within 2 days.
    nearby = transitions_s(name, wall_s - 2 * 86400, wall_s + 2 * 86400)
    offsets = {offset_at_s(name, wall_s - 2 * 86400)} | {after for _, _, after in nearby}
    instants = sorted(wall_s - off for off in offsets if offset_at_s(name, wall_s - off) == off)
    if instants:
        return instants[0], ("repeated" if len(instants) > 1 else "exact")
    for at_s, before_s, after_s in nearby:
        if at_s + before_s <= wall_s < at_s + after_s:
            return at_s, "gap"
    raise AssertionError(f"wall time {wall_s} in {name} neither happens nor falls in a gap")

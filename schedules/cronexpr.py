"""Five-field cron expressions: parsing, and the offset-free (wall-clock) search.

``minute hour day-of-month month day-of-week``; each field is a comma list of ``*``,
``*/n``, ``a``, ``a-b``, ``a-b/n`` or ``a/n`` (a to the field's maximum, step n). Months
take ``jan``-``dec`` and weekdays ``sun``-``sat`` (any case); weekday 0 and 7 are Sunday.

Day matching is Vixie cron's: when both day fields are restricted (neither begins with
``*``) a day matches if EITHER matches; otherwise both must match, so ``*/2`` in one day
field still combines with AND.

This module knows nothing of time zones. :meth:`CronExpr.next_wall_match_s` searches naive
wall-clock seconds (a local time written as if it were UTC); ``schedules.cron`` maps wall
time onto real instants.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from schedules.errors import BeatkeeperScheduleError

FIELD_NAMES = ("minute", "hour", "day_of_month", "month", "day_of_week")
_BOUNDS = {"minute": (0, 59), "hour": (0, 23), "day_of_month": (1, 31), "month": (1, 12), "day_of_week": (0, 7)}
_MONTH_NAMES = {n: i for i, n in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_DOW_NAMES = {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())}
_NAMES = {"month": _MONTH_NAMES, "day_of_week": _DOW_NAMES}

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class CronSyntaxError(BeatkeeperScheduleError, ValueError):
    """A cron expression that cannot be parsed; ``field`` names the culprit ('cron' for the whole)."""

    def __init__(self, field: str, value: str, reason: str):
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field} field {value!r}: {reason}" if field != "cron" else f"{value!r}: {reason}")


def _value(token: str, field_name: str) -> int:
    names = _NAMES.get(field_name)
    if names is not None and token[:1].isalpha():
        number = names.get(token.lower())
        if number is None:
            expected = "jan-dec" if field_name == "month" else "sun-sat"
            raise CronSyntaxError(field_name, token, f"unknown name {_short(token)} (expected {expected})")
        return number
    return _number(token, field_name, token, label=_short(token))


def _number(token: str, field_name: str, text: str, *, label: str) -> int:
    """``token`` as an int: ASCII digits only, since str.isdigit() also accepts '¹' (which int()
    then refuses) and '３' or '٣' (which int() reads as 3). ``label`` names it in messages."""
    if not (token.isascii() and token.isdigit()):
        raise CronSyntaxError(field_name, text, f"{label} is not a number (digits 0-9)")
    if len(token.lstrip("0")) > 9:  # beyond every field's range; int() of it would only cost time
        low, high = _BOUNDS[field_name]
        raise CronSyntaxError(field_name, text, f"{label} is outside {low}-{high}")
    return int(token)


def _short(text: str) -> str:
    return repr(text) if len(text) <= 20 else repr(text[:17] + "...")


def parse_field(text: str, field_name: str) -> frozenset[int]:
    """The values one cron field selects; raises CronSyntaxError naming ``field_name``.

    Also used for the hour and weekday lists of schedule windows. Weekday 7 folds to 0.
    """
    if field_name not in _BOUNDS:
        raise ValueError(f"unknown cron field {field_name!r}; expected one of {FIELD_NAMES}")
    low, high = _BOUNDS[field_name]
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _number(step_text, field_name, text, label=f"step {_short(step_text)} in {_short(item)}")
            if step == 0:
                raise CronSyntaxError(field_name, text, f"step 0 in {item!r}: a step must be at least 1")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, _, last_text = base.partition("-")
            if not first_text or not last_text:
                raise CronSyntaxError(field_name, text, f"range {base!r} needs a start and an end")
            first, last = _value(first_text, field_name), _value(last_text, field_name)
            if first > last:
                raise CronSyntaxError(field_name, text, f"range {base!r} runs backwards ({first} > {last})")
        elif base:
            first = _value(base, field_name)
            last = high if slash else first  # "a/n" means a, a+n, ... up to the maximum
        else:
            raise CronSyntaxError(field_name, text, "empty list item")
        for number in (first, last):
            if not low <= number <= high:
                raise CronSyntaxError(field_name, text, f"{number} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    if field_name == "day_of_week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _next_table(values: frozenset[int], size: int) -> tuple[int, ...]:
    """``table[i]`` = smallest value >= i, or -1; one extra slot so ``table[size]`` is -1."""
    table = [-1] * (size + 1)
    following = -1
    for i in range(size - 1, -1, -1):
        if i in values:
            following = i
        table[i] = following
    return tuple(table)


def _bits(values: frozenset[int]) -> int:
    mask = 0
    for v in values:
        mask |= 1 << v
    return mask


@dataclass(frozen=True)
class CronExpr:
    """A parsed five-field cron expression (days_of_week: 0=Sunday..6)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    dom_restricted: bool
    dow_restricted: bool
    is_wildcard: bool  # minute or hour field begins with '*': follows real elapsed time
    source: str
    _next_minute: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_hour: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_month: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _month_masks: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: precomputed search tables are set once, here
        set_(self, "_next_minute", _next_table(self.minutes, 60))
        set_(self, "_next_hour", _next_table(self.hours, 24))
        set_(self, "_next_month", _next_table(self.months, 13))
        set_(self, "_month_masks", {})

    @classmethod
    def parse(cls, text: str) -> CronExpr:
        """Parse ``minute hour day-of-month month day-of-week``; CronSyntaxError names the bad field."""
        if not isinstance(text, str):
            raise CronSyntaxError("cron", repr(text), f"expected a string, got {type(text).__name__}")
        parts = text.split()
        if len(parts) != 5:
            raise CronSyntaxError(
                "cron", text, f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
            )
        sets = [parse_field(part, name) for part, name in zip(parts, FIELD_NAMES)]
        return cls(
            minutes=sets[0],
            hours=sets[1],
            days_of_month=sets[2],
            months=sets[3],
            days_of_week=sets[4],
            dom_restricted=not parts[2].startswith("*"),
            dow_restricted=not parts[4].startswith("*"),
            is_wildcard=parts[0].startswith("*") or parts[1].startswith("*"),
            source=" ".join(parts),
        )

    def __str__(self) -> str:
        return self.source

    # -- days ------------------------------------------------------------------------------
    def matches_day(self, d: date) -> bool:
        """Whether the local date ``d`` is a run day (month, then Vixie's dom/dow rule)."""
        return bool(self.month_day_mask(d.year, d.month) >> d.day & 1)

    def month_day_mask(self, year: int, month: int) -> int:
        """Bit ``d`` set for every matching day ``d`` of the month (bit 0 unused)."""
        if month not in self.months:
            return 0
        length = _DAYS_IN_MONTH[month]
        if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
            length = 29
        first_dow = date(year, month, 1).toordinal() % 7  # ordinal 7 is a Sunday -> 0
        key = (month, length, first_dow)
        mask = self._month_masks.get(key)
        if mask is None:
            mask = self._compute_month_mask(length, first_dow)
            self._month_masks[key] = mask
        return mask

    def _compute_month_mask(self, length: int, first_dow: int) -> int:
        in_month = (1 << (length + 1)) - 2
        dom = _bits(self.days_of_month)
        dow = 0
        for day in range(1, length + 1):
            if (first_dow + day - 1) % 7 in self.days_of_week:
                dow |= 1 << day
        combined = (dom | dow) if (self.dom_restricted and self.dow_restricted) else (dom & dow)
        return combined & in_month

    # -- wall-clock search -----------------------------------------------------------------
    def next_wall_match_s(self, low_s: int, high_s: int) -> int | None:
        """The smallest matching wall minute ``w`` (naive epoch seconds) with low <= w < high.

        Field by field like a hand search: wrong month -> next month, wrong day -> next
        day, wrong hour -> next hour; day candidates come from a per-month bit mask, so a
        never-matching ``0 0 30 2 *`` costs one step per month, not per day.
        """
        wall = -(-low_s // 60) * 60  # round up to a whole minute
        if wall >= high_s:
            return None
        days, second_of_day = divmod(wall, 86400)
        hour, rest = divmod(second_of_day, 3600)
        minute = rest // 60
        d = date.fromordinal(days + EPOCH_ORDINAL)
        year, month, day = d.year, d.month, d.day
        next_minute, next_hour, next_month = self._next_minute, self._next_hour, self._next_month
        while True:
            if next_month[month] != month:
                found = next_month[month]
                if found < 0:
                    year, found = year + 1, next_month[1]
                    if found < 0 or year > 9998:
                        return None
                month, day, hour, minute = found, 1, 0, 0
                if (date(year, month, 1).toordinal() - EPOCH_ORDINAL) * 86400 >= high_s:
                    return None
            candidates = self.month_day_mask(year, month) >> day
            if not candidates:
                month += 1
                if month == 13:
                    year, month = year + 1, 1
                    if year > 9998:
                        return None
                day, hour, minute = 1, 0, 0
                if (date(year, month, 1).toordinal() - EPOCH_ORDINAL) * 86400 >= high_s:
                    return None
                continue
            skip = (candidates & -candidates).bit_length() - 1
            if skip:
                day, hour, minute = day + skip, 0, 0
            found_hour = next_hour[hour]
            if found_hour < 0:
                day, hour, minute = day + 1, 0, 0
                continue
            if found_hour != hour:
                hour, minute = found_hour, 0
            found_minute = next_minute[minute]
            if found_minute < 0:
                hour, minute = hour + 1, 0  # hour 24 finds no hour and moves to the next day
                continue
            wall = (date(year, month, day).toordinal() - EPOCH_ORDINAL) * 86400 + hour * 3600 + found_minute * 60
            return wall if wall < high_s else None

    def has_wall_match(self, low_s: int, high_s: int) -> bool:
        """Whether any wall minute in ``[low_s, high_s)`` matches."""
        return self.next_wall_match_s(low_s, high_s) is not None

    # -- naive gaps -------------------------------------------------------------------------
    def naive_min_gap_s(self, first_day: date, last_day: date) -> int | None:
        """Smallest gap between consecutive wall-clock matches on run days in the range.

        Offset-free: what the gap would be in UTC. Intra-day gaps come from the minute
        and hour sets; the cross-midnight gap uses the closest pair of run days found
        in ``[first_day, last_day]``. None when the range holds fewer than two matches.
        """
        minutes, hours = sorted(self.minutes), sorted(self.hours)
        best: int | None = None
        if len(minutes) > 1:
            best = min(b - a for a, b in zip(minutes, minutes[1:])) * 60
        for h1, h2 in zip(hours, hours[1:]):
            gap = ((h2 - h1) * 60 + minutes[0] - minutes[-1]) * 60
            best = gap if best is None else min(best, gap)
        day_distance = self._closest_run_days(first_day, last_day)
        if day_distance is None:
            # One run day at most: only intra-day gaps exist, if the day is there at all.
            return best if self._any_run_day(first_day, last_day) else None
        span_s = (hours[-1] * 60 + minutes[-1] - hours[0] * 60 - minutes[0]) * 60
        cross = day_distance * 86400 - span_s
        return cross if best is None else min(best, cross)

    def _run_day_ordinals(self, first_day: date, last_day: date):
        year, month = first_day.year, first_day.month
        first_ord, last_ord = first_day.toordinal(), last_day.toordinal()
        while (year, month) <= (last_day.year, last_day.month):
            mask = self.month_day_mask(year, month)
            base = date(year, month, 1).toordinal() - 1
            while mask:
                low_bit = mask & -mask
                ordinal = base + low_bit.bit_length() - 1
                if first_ord <= ordinal <= last_ord:
                    yield ordinal
                mask ^= low_bit
            month += 1
            if month == 13:
                year, month = year + 1, 1

    def _any_run_day(self, first_day: date, last_day: date) -> bool:
        return next(self._run_day_ordinals(first_day, last_day), None) is not None

    def _closest_run_days(self, first_day: date, last_day: date) -> int | None:
        best: int | None = None
        previous: int | None = None
        for ordinal in self._run_day_ordinals(first_day, last_day):
            if previous is not None:
                distance = ordinal - previous
                if best is None or distance < best:
                    best = distance
                    if best == 1:
                        return 1
            previous = ordinal
        return best

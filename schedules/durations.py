"""Durations as seconds: a number, or a string such as "15s", "2m", "1h30m", "500ms", "1d".

A string is one or more ``<number><unit>`` parts, largest unit first, each unit at most
once; a bare number string ("15") means seconds (environment variables arrive as strings).
Digits are ASCII 0-9 only ("３m" is not three minutes). Every duration is within
``MAX_DURATION_S`` (3650 days) either way: nothing beatkeeper times needs more, and a
longer one overflows the date arithmetic it feeds. Whether zero or negative values are
acceptable is the caller's rule, not this module's.
"""
from __future__ import annotations

import math
import re

from schedules.errors import DurationError

UNIT_S: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = list(UNIT_S)  # largest first
MAX_DURATION_S = 3650 * 86400.0  # seconds (3650d, about 10 years): the longest duration accepted
_MAX_TEXT = "3650d (about 10 years)"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|d|h|m|s)")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def parse_duration_s(value: object) -> float:
    """``value`` in seconds; raises :class:`DurationError` (a ValueError) saying why not."""
    if isinstance(value, bool):  # bool is an int subclass: `every: true` is a mistake, not 1 s
        raise DurationError(value, "expected seconds or a duration such as '15s', got a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise DurationError(value, f"expected a finite number of seconds, got {value}")
    if isinstance(value, (int, float)):
        return _bounded(value, value)  # compared before float(): a huge int does not convert
    if not isinstance(value, str):
        raise DurationError(value, f"expected seconds or a duration such as '15s', got {type(value).__name__}")
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _bounded(value, float(text))
    return _bounded(value, _parse_units(value, text))


def _bounded(value: object, seconds: int | float) -> float:
    if abs(seconds) > MAX_DURATION_S:  # inf too: a string of 400 digits reads as inf
        relation = "less than -" if seconds < 0 else "more than "
        raise DurationError(value, f"{describe_number(value)} is {relation}{_MAX_TEXT}, the longest duration allowed")
    return float(seconds)


def describe_number(value: object) -> str:
    """``value`` as a message shows it: a very long number by its digit count, never by its digits."""
    text = value.strip() if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 15:
        return f"a number of {_digits(value)} digits"
    if text is not None and _NUMBER.fullmatch(text) and len(text) > 15:
        return f"a number of {sum(ch.isdigit() for ch in text)} digits"
    if text is not None:
        return repr(text) if len(text) <= 40 else repr(text[:37] + "...")
    return str(value)


def _digits(number: int) -> int:
    try:
        return len(str(abs(number)))
    except ValueError:  # more digits than Python converts to text: estimate from the bits
        return int(abs(number).bit_length() * math.log10(2)) + 1


def _parse_units(value: str, text: str) -> float:
    total = 0.0
    position = 0
    last_rank = -1
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        rank = _UNIT_ORDER.index(match.group(2))
        if rank <= last_rank:  # "30m1h" or "1h1h" is more likely a typo than intended
            raise DurationError(value, f"{value!r} is not a duration: units must be largest first, each once")
        last_rank = rank
        total += float(match.group(1)) * UNIT_S[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise DurationError(value, f"{value!r} is not a duration such as '15s', '2m', '1h30m', '500ms' or '1d'")
    return total


def format_duration(seconds: float) -> str:
    """``seconds`` as a duration ``parse_duration`` reads back: ``300`` -> "5m", ``7200`` -> "2h",
    ``90`` -> "90s", ``0.25`` -> "0.25s"."""
    for unit_s, suffix in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= unit_s and seconds % unit_s == 0:
            return f"{int(seconds // unit_s)}{suffix}"
    return f"{seconds:g}s"


def format_seconds(seconds: float) -> str:
    """``seconds`` as a short number for messages: 10.0 -> "10", 0.1 -> "0.1"."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.6g}"

"""Durations as seconds: a number, or a string such as "15s", "2m", "1h30m", "500ms", "1d".

A string is one or more ``<number><unit>`` parts, largest unit first, each unit at most
once; a bare number string ("15") means seconds (environment variables arrive as strings).
Whether zero or negative values are acceptable is the caller's rule, not this module's.
"""
from __future__ import annotations

import math
import re

from schedules.errors import DurationError

UNIT_S: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = list(UNIT_S)  # largest first
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def parse_duration_s(value: object) -> float:
    """``value`` in seconds; raises :class:`DurationError` (a ValueError) saying why not."""
    if isinstance(value, bool):  # bool is an int subclass: `every: true` is a mistake, not 1 s
        raise DurationError(value, "expected seconds or a duration such as '15s', got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise DurationError(value, f"expected a finite number of seconds, got {value}")
        return seconds
    if not isinstance(value, str):
        raise DurationError(value, f"expected seconds or a duration such as '15s', got {type(value).__name__}")
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    return _parse_units(value, text)


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


def format_seconds(seconds: float) -> str:
    """``seconds`` as a short number for messages: 10.0 -> "10", 0.1 -> "0.1"."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.6g}"

"""Converters of entry values: each checks one raw value of a schedule entry and returns it
converted, or raises :class:`~schedules.errors.InvalidValue` with one or more
``(sub-field, message)`` pairs. Also the value types the ``dst`` and ``retry`` keys become.
``schedules.entry``'s key table says which key uses which.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from schedules.backoff import retry_delay_s
from schedules.cron import GapPolicy, RepeatPolicy
from schedules.cronexpr import CronExpr, CronSyntaxError, parse_field
from schedules.durations import describe_number, parse_duration_s
from schedules.errors import DurationError, InvalidValue
from schedules.windows import Window
from schedules.zones import is_valid_timezone


@dataclass(frozen=True)
class DstPolicy:
    """An entry's ``dst`` key: what a local time in a gap or a repeated hour does (None: the trigger's default)."""

    gap: GapPolicy | None = None
    repeat: RepeatPolicy | None = None


@dataclass(frozen=True)
class RetrySpec:
    """An entry's ``retry`` key: transient errors are retried with exponential backoff and jitter.

    Retry n (0-based) waits ``min(backoff_s * 2**n, backoff_max_s)``, scaled by a random
    factor in [0.5, 1] when ``jitter`` -- Celery's ``retry_backoff``/``retry_jitter`` rule."""

    max_retries: int = 3
    backoff_s: float = 1.0  # seconds before the first retry
    backoff_max_s: float = 600.0  # seconds: the longest wait
    jitter: bool = True
    on: tuple[str, ...] = ()  # exception class names (any base class counts); empty: any Exception

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_s <= 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError(f"retry needs max_retries >= 0 and 0 < backoff_s <= backoff_max_s, got {self}")

    def delay_s(self, retries: int, *, jitter: float) -> float:
        """Seconds before retry number ``retries`` (0 for the first); ``jitter`` in [0, 1), used when
        ``self.jitter`` (the one formula: ``schedules.backoff``)."""
        return retry_delay_s(retries, base_s=self.backoff_s, max_s=self.backoff_max_s,
                             jitter=jitter if self.jitter else None)

    @property
    def longest_wait_s(self) -> float:
        """The longest wait between two attempts."""
        return self.backoff_max_s if self.max_retries else 0.0

    def as_fields(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "backoff_s": self.backoff_s, "backoff_max_s": self.backoff_max_s,
                "jitter": self.jitter, "on": list(self.on)}


def show(value: object, limit: int = 60) -> str:
    """``value`` as it appears after "got" in a message (repr, shortened; a huge number by its digit count)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 15:
        return describe_number(value)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


# -- converters: value -> converted value, or InvalidValue --------------------------------------
def string(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string, got {_type_name(value)} {show(value)}")
    return value


def non_empty_string(value: object) -> str:
    if not string(value).strip():
        raise InvalidValue("must not be empty")
    return value


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"expected true or false, got {show(value)}")
    return value


def positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"expected a whole number, got {show(value)}")
    if value <= 0:
        raise InvalidValue(f"must be greater than 0, got {show(value)}")
    return value


def count_up_to(maximum: int) -> Callable[[object], int]:
    """A whole number from 1 to ``maximum``: every count an entry sets has a bound, named when passed."""
    def convert(value: object) -> int:
        if positive_int(value) > maximum:
            raise InvalidValue(f"{show(value)} is more than {maximum}, the most allowed")
        return value
    return convert


#: The bound of each count an entry may set.
MAX_RUNS_PER_HOUR = 1_000_000  # runs/hour: far above any budget the guards would let through
MAX_CATCHUP_RUNS = 1000  # missed runs sent at once by catchup: all
MAX_RETRIES = 100  # retries of one run


def _duration(value: object) -> float:
    try:
        return parse_duration_s(value)
    except DurationError as exc:
        raise InvalidValue(exc.reason) from None


def positive_duration(value: object) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise InvalidValue(f"must be greater than 0 seconds, got {show(value)}")
    return seconds


def non_negative_duration(value: object) -> float:
    seconds = _duration(value)
    if seconds < 0:
        raise InvalidValue(f"must not be negative, got {show(value)}")
    return seconds


def choice(enum: type[StrEnum]) -> Callable[[object], StrEnum]:
    options = [member.value for member in enum]

    def convert(value: object) -> StrEnum:
        if not isinstance(value, str) or value not in options:
            raise InvalidValue(f"expected one of {', '.join(options)}, got {show(value)}")
        return enum(value)
    return convert


def string_list(value: object) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
        raise InvalidValue(f"expected a list of non-empty strings, got {show(value)}")
    return list(value)


def _json_problem(value: object, path: str) -> str | None:
    """Where ``value`` stops being JSON (``path`` names it), or None."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value}, which JSON cannot hold"
    if isinstance(value, (list, tuple)):
        return next((p for i, item in enumerate(value) if (p := _json_problem(item, f"{path}[{i}]"))), None)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has key {show(key)}; JSON keys must be strings"
            if problem := _json_problem(item, f"{path}[{key!r}]"):
                return problem
        return None
    return f"{path} is {_type_name(value)} {show(value)}, not JSON-serialisable"


def json_list(value: object) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise InvalidValue(f"expected a list, got {_type_name(value)} {show(value)}")
    if problem := _json_problem(value, "args"):
        raise InvalidValue(problem)
    return list(value)


def json_mapping(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a mapping, got {_type_name(value)} {show(value)}")
    if problem := _json_problem(value, "kwargs"):
        raise InvalidValue(problem)
    return dict(value)


def timezone_name(value: object) -> str:
    # A .py schedule file may hold the zone object itself: pytz's (.zone) or zoneinfo's (.key).
    name = getattr(value, "zone", None) or getattr(value, "key", None)
    if isinstance(name, str) and not isinstance(value, str):
        value = name
    if not is_valid_timezone(string(value)):
        raise InvalidValue(f"unknown time zone {show(value)} (expected an IANA name such as 'Europe/London')")
    return value


def cron(value: object) -> CronExpr:
    try:
        return CronExpr.parse(string(value))
    except CronSyntaxError as exc:
        raise InvalidValue(exc.reason if exc.field == "cron" else f"{exc.field}: {exc.reason}") from None


#: The years an ``at`` may name: outside them the time-zone arithmetic leaves datetime's range
#: (year 1 and 9999 did); the 8-year horizon of validation refuses the far future anyway.
AT_YEARS = (1970, 2999)


def at(value: object) -> datetime:
    if isinstance(value, datetime):  # YAML and TOML parse date-times themselves
        moment = value
    elif isinstance(value, date):
        raise InvalidValue(f"expected an ISO-8601 date-time, got the date {value.isoformat()}")
    else:
        try:
            moment = datetime.fromisoformat(string(value).strip())  # digits 0-9 only, '２０２６' is refused
        except ValueError:
            raise InvalidValue(f"expected an ISO-8601 date-time such as '2026-10-04T03:00', "
                               f"got {show(value)}") from None
    first, last = AT_YEARS
    if not first <= moment.year <= last:
        raise InvalidValue(f"year {moment.year} is outside {first}-{last}, the years an at may name")
    return moment


def dst(value: object) -> DstPolicy:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a mapping such as {{gap: shift, repeat: first}}, got {show(value)}")
    problems: list[tuple[str, str]] = []
    converted: dict[str, Any] = {}
    for key, item in value.items():
        policy = {"gap": GapPolicy, "repeat": RepeatPolicy}.get(key)
        if policy is None:
            problems.append((f"{key}", f"unknown key{close_match_hint(key, ['gap', 'repeat'])}"))
            continue
        try:
            converted[key] = choice(policy)(item)
        except InvalidValue as exc:
            problems.extend((key, message) for _, message in exc.problems)
    if problems:
        raise InvalidValue.many(problems)
    return DstPolicy(**converted)


#: retry sub-key -> (RetrySpec attribute, converter)
_RETRY_KEYS = {"max_retries": ("max_retries", count_up_to(MAX_RETRIES)),
               "backoff": ("backoff_s", positive_duration),
               "backoff_max": ("backoff_max_s", positive_duration),
               "jitter": ("jitter", boolean),
               "on": ("on", lambda v: tuple(string_list(v)))}


def retry(value: object) -> RetrySpec:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a mapping such as {{max_retries: 3, backoff: 30s, on: [TimeoutError]}}, "
                           f"got {show(value)}")
    problems: list[tuple[str, str]] = []
    converted: dict[str, Any] = {}
    for key, item in value.items():
        if key not in _RETRY_KEYS:
            problems.append((f"{key}", f"unknown key{close_match_hint(key, list(_RETRY_KEYS))}"))
            continue
        attribute, convert = _RETRY_KEYS[key]
        try:
            converted[attribute] = convert(item)
        except InvalidValue as exc:
            problems.extend((key, message) for _, message in exc.problems)
    if problems:
        raise InvalidValue.many(problems)
    return RetrySpec(**converted)


_WINDOW_KEYS = ("hours", "days", "every", "phase")


def windows(value: object) -> list[Window]:
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidValue(f"expected a non-empty list of windows, got {show(value)}")
    problems: list[tuple[str, str]] = []
    windows: list[Window] = []
    for i, item in enumerate(value):
        at = f"[{i}]"
        if not isinstance(item, Mapping):
            problems.append((at, f"expected a mapping with every (and hours, days), got {show(item)}"))
            continue
        found: dict[str, Any] = {}
        for key, raw in item.items():
            if key not in _WINDOW_KEYS:
                problems.append((f"{at}.{key}", f"unknown key{close_match_hint(key, _WINDOW_KEYS)}"))
                continue
            try:
                if key == "every":
                    found["every_s"] = positive_duration(raw)
                elif key == "phase":
                    found["phase_s"] = non_negative_duration(raw)
                else:
                    field_name = "hour" if key == "hours" else "day_of_week"
                    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else string(raw)
                    found["hours" if key == "hours" else "days_of_week"] = _cron_list(text, field_name)
            except InvalidValue as exc:
                problems.extend((f"{at}.{key}", message) for _, message in exc.problems)
        if "every" not in item:
            problems.append((f"{at}.every", "is required"))
        last = i == len(value) - 1
        if last and ("hours" in item or "days" in item):
            problems.append((at, "the last window is the catch-all: it must have neither hours nor days"))
        if not last and "hours" not in item and "days" not in item:
            problems.append((at, "only the last window may omit both hours and days (later ones could never apply)"))
        if "every_s" in found:
            windows.append(Window(**found))
    if problems:
        raise InvalidValue.many(problems)
    return windows


def _cron_list(text: str, field_name: str) -> frozenset[int]:
    try:
        return parse_field(text.strip(), field_name)
    except CronSyntaxError as exc:
        raise InvalidValue(exc.reason) from None


def close_match_hint(key: object, known: Any) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f" {show(key)}; did you mean '{close[0]}'?" if close else f" {show(key)}"

"""One schedule entry: its typed spec, and the table that converts and checks each key.

Each key of an entry dict is one line of :data:`KEYS`: the converter that checks and
converts its value, the :class:`EntrySpec` attribute it fills, its default and, for
schedule kinds, which kind it is. Adding a key is one line there (plus the attribute).

A converter raises :class:`~schedules.errors.InvalidValue` with one or more ``(sub-field, message)`` pairs;
:func:`convert_keys` collects every message of every key, so one pass reports all that
is wrong with an entry. Building the trigger from the converted values is
``schedules.validate``'s job: it needs the zone and DST policy together.
"""
from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from schedules.cron import GapPolicy, RepeatPolicy
from schedules.cronexpr import CronExpr, CronSyntaxError, parse_field
from schedules.durations import parse_duration_s
from schedules.errors import DurationError, InvalidValue
from schedules.trigger import Trigger
from schedules.windows import Window
from schedules.zones import is_valid_timezone


class ScheduleKind(StrEnum):
    """The four ways an entry says when it fires; exactly one per entry."""

    EVERY = "every"
    CRON = "cron"
    AT = "at"
    WINDOWS = "windows"


#: Kinds that read wall-clock time, hence take ``timezone`` and ``dst``.
ZONED_KINDS = frozenset({ScheduleKind.CRON, ScheduleKind.AT, ScheduleKind.WINDOWS})


class OverlapPolicy(StrEnum):
    """What to do when a run is due while the previous one still runs."""

    ALLOW = "allow"  # no lock at all: runs may overlap
    SKIP = "skip"  # the new run does not execute; it is recorded as skipped_overlap
    BUFFER_ONE = "buffer_one"  # one run waits and starts when the lock frees; further ones skip


class CatchupPolicy(StrEnum):
    """What to do with fires missed while beat was down."""

    SKIP = "skip"
    LATEST = "latest"
    ALL = "all"


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

    def as_fields(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "backoff_s": self.backoff_s, "backoff_max_s": self.backoff_max_s,
                "jitter": self.jitter, "on": list(self.on)}


@dataclass(frozen=True)
class EntrySpec:
    """A validated schedule entry. ``config`` is the normalized, JSON-able dict it was built from."""

    name: str
    task: str
    trigger: Trigger
    kind: ScheduleKind
    timezone: str  # the zone its fires are shown in (the settings' default for `every`)
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str | None
    expires_s: float | None
    enabled: bool
    description: str
    expected_runtime_s: float | None
    max_runs_per_hour: int | None
    dst: DstPolicy | None
    # Declared now, enforced by later capabilities; None means "the platform default".
    overlap: OverlapPolicy | None
    lock_ttl_s: float | None
    lock_key: list[str] | None
    max_runtime_s: float | None
    time_limit_s: float | None
    catchup: CatchupPolicy | None
    catchup_window_s: float | None
    catchup_max: int | None
    retry: RetrySpec | None
    config: dict[str, Any]


def show(value: object, limit: int = 60) -> str:
    """``value`` as it appears after "got" in a message (repr, shortened)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


# -- converters: value -> converted value, or InvalidValue --------------------------------------
def _string(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string, got {_type_name(value)} {show(value)}")
    return value


def _non_empty_string(value: object) -> str:
    if not _string(value).strip():
        raise InvalidValue("must not be empty")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"expected true or false, got {show(value)}")
    return value


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"expected a whole number, got {show(value)}")
    if value <= 0:
        raise InvalidValue(f"must be greater than 0, got {value}")
    return value


def _duration(value: object) -> float:
    try:
        return parse_duration_s(value)
    except DurationError as exc:
        raise InvalidValue(exc.reason) from None


def _positive_duration(value: object) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise InvalidValue(f"must be greater than 0 seconds, got {show(value)}")
    return seconds


def _non_negative_duration(value: object) -> float:
    seconds = _duration(value)
    if seconds < 0:
        raise InvalidValue(f"must not be negative, got {show(value)}")
    return seconds


def _choice(enum: type[StrEnum]) -> Callable[[object], StrEnum]:
    options = [member.value for member in enum]

    def convert(value: object) -> StrEnum:
        if not isinstance(value, str) or value not in options:
            raise InvalidValue(f"expected one of {', '.join(options)}, got {show(value)}")
        return enum(value)
    return convert


def _string_list(value: object) -> list[str]:
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


def _json_list(value: object) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise InvalidValue(f"expected a list, got {_type_name(value)} {show(value)}")
    if problem := _json_problem(value, "args"):
        raise InvalidValue(problem)
    return list(value)


def _json_mapping(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a mapping, got {_type_name(value)} {show(value)}")
    if problem := _json_problem(value, "kwargs"):
        raise InvalidValue(problem)
    return dict(value)


def _timezone(value: object) -> str:
    if not is_valid_timezone(_string(value)):
        raise InvalidValue(f"unknown time zone {show(value)} (expected an IANA name such as 'Europe/London')")
    return value


def _cron(value: object) -> CronExpr:
    try:
        return CronExpr.parse(_string(value))
    except CronSyntaxError as exc:
        raise InvalidValue(exc.reason if exc.field == "cron" else f"{exc.field}: {exc.reason}") from None


def _at(value: object) -> datetime:
    if isinstance(value, datetime):  # YAML and TOML parse date-times themselves
        return value
    if isinstance(value, date):
        raise InvalidValue(f"expected an ISO-8601 date-time, got the date {value.isoformat()}")
    try:
        return datetime.fromisoformat(_string(value).strip())
    except ValueError:
        raise InvalidValue(f"expected an ISO-8601 date-time such as '2026-10-04T03:00', got {show(value)}") from None


def _dst(value: object) -> DstPolicy:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a mapping such as {{gap: shift, repeat: first}}, got {show(value)}")
    problems: list[tuple[str, str]] = []
    converted: dict[str, Any] = {}
    for key, item in value.items():
        policy = {"gap": GapPolicy, "repeat": RepeatPolicy}.get(key)
        if policy is None:
            problems.append((f"{key}", f"unknown key{_hint(key, ['gap', 'repeat'])}"))
            continue
        try:
            converted[key] = _choice(policy)(item)
        except InvalidValue as exc:
            problems.extend((key, message) for _, message in exc.problems)
    if problems:
        raise InvalidValue.many(problems)
    return DstPolicy(**converted)


#: retry sub-key -> (RetrySpec attribute, converter)
_RETRY_KEYS = {"max_retries": ("max_retries", _positive_int),
               "backoff": ("backoff_s", _positive_duration),
               "backoff_max": ("backoff_max_s", _positive_duration),
               "jitter": ("jitter", _boolean),
               "on": ("on", lambda v: tuple(_string_list(v)))}


def _retry(value: object) -> RetrySpec:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a mapping such as {{max_retries: 3, backoff: 30s, on: [TimeoutError]}}, "
                           f"got {show(value)}")
    problems: list[tuple[str, str]] = []
    converted: dict[str, Any] = {}
    for key, item in value.items():
        if key not in _RETRY_KEYS:
            problems.append((f"{key}", f"unknown key{_hint(key, list(_RETRY_KEYS))}"))
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


def _windows(value: object) -> list[Window]:
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
                problems.append((f"{at}.{key}", f"unknown key{_hint(key, _WINDOW_KEYS)}"))
                continue
            try:
                if key == "every":
                    found["every_s"] = _positive_duration(raw)
                elif key == "phase":
                    found["phase_s"] = _non_negative_duration(raw)
                else:
                    field_name = "hour" if key == "hours" else "day_of_week"
                    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else _string(raw)
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


def _hint(key: object, known: Any) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f" {show(key)}; did you mean '{close[0]}'?" if close else f" {show(key)}"


# -- the key table ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """How one entry key is converted, which spec attribute it fills, and its default."""

    convert: Callable[[object], Any]
    attribute: str | None = None  # None: used to build the trigger, not stored as is
    default: Any = None
    kind: ScheduleKind | None = None
    only_with: frozenset[ScheduleKind] | None = None  # kinds the key applies to (None: all)
    required: bool = False
    # The converted value is immutable and costly to make: entries with equal raw values share it.
    shared: bool = False


_EVERY = frozenset({ScheduleKind.EVERY})
_WALL_TIME = frozenset({ScheduleKind.CRON, ScheduleKind.AT})

KEYS: dict[str, Key] = {
    "task": Key(_non_empty_string, "task", required=True),
    "every": Key(_positive_duration, kind=ScheduleKind.EVERY, shared=True),
    "cron": Key(_cron, kind=ScheduleKind.CRON, shared=True),
    "at": Key(_at, kind=ScheduleKind.AT, shared=True),
    "windows": Key(_windows, kind=ScheduleKind.WINDOWS, shared=True),
    "phase": Key(_non_negative_duration, default=0.0, only_with=_EVERY, shared=True),
    "timezone": Key(_timezone, only_with=ZONED_KINDS, shared=True),
    "dst": Key(_dst, "dst", only_with=_WALL_TIME),  # windows grids run in real time: no DST choice
    "args": Key(_json_list, "args", default=[]),
    "kwargs": Key(_json_mapping, "kwargs", default={}),
    "queue": Key(_non_empty_string, "queue"),
    "expires": Key(_positive_duration, "expires_s", shared=True),
    "enabled": Key(_boolean, "enabled", default=True),
    "description": Key(_string, "description", default=""),
    "expected_runtime": Key(_positive_duration, "expected_runtime_s", shared=True),
    "max_runs_per_hour": Key(_positive_int, "max_runs_per_hour"),
    "overlap": Key(_choice(OverlapPolicy), "overlap"),
    "lock_ttl": Key(_positive_duration, "lock_ttl_s", shared=True),
    "lock_key": Key(_string_list, "lock_key"),
    "max_runtime": Key(_positive_duration, "max_runtime_s", shared=True),
    "time_limit": Key(_positive_duration, "time_limit_s", shared=True),
    "catchup": Key(_choice(CatchupPolicy), "catchup"),
    "catchup_window": Key(_positive_duration, "catchup_window_s", shared=True),
    "catchup_max": Key(_positive_int, "catchup_max"),
    "retry": Key(_retry, "retry"),
}
KIND_KEYS = {key: spec.kind for key, spec in KEYS.items() if spec.kind is not None}
_SCALARS = (str, int, float)


def _converted(key: str, spec: Key, value: object, shared: dict) -> Any:
    """``spec.convert(value)``, once per distinct raw value. Scalars are told apart by type too
    (1 and 1.0 and True are equal in Python); lists and mappings by their JSON text."""
    if type(value) in _SCALARS:
        found_key: tuple = (key, type(value), value)
    else:
        try:
            found_key = (key, json.dumps(value, sort_keys=True, allow_nan=False))
        except (TypeError, ValueError):  # not JSON (a datetime from YAML, say): no sharing
            return spec.convert(value)
    found = shared.get(found_key)
    if found is None:
        found = shared[found_key] = spec.convert(value)
    return found


def convert_keys(raw: Mapping[Any, Any], shared: dict | None = None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Every known key of ``raw`` converted, and the (field, message) problems of the others.

    ``shared`` (kept across the entries of one schedule) holds the converted values of
    ``Key.shared`` keys, by raw value."""
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, value in raw.items():
        spec = KEYS.get(key) if isinstance(key, str) else None
        if spec is None:
            problems.append((str(key), f"unknown key{_hint(key, KEYS)}"))
            continue
        try:
            values[key] = _converted(key, spec, value, shared) if shared is not None and spec.shared \
                else spec.convert(value)
        except InvalidValue as exc:
            problems.extend((key + (sub if sub.startswith("[") or not sub else f".{sub}"), message)
                            for sub, message in exc.problems)
    for key, spec in KEYS.items():
        if spec.required and key not in raw:
            problems.append((key, "is required"))
    kinds = [key for key in KIND_KEYS if key in raw]
    if len(kinds) != 1:
        given = "none given" if not kinds else "got " + " and ".join(kinds)
        problems.append(("schedule", f"needs exactly one of every, cron, at or windows; {given}"))
    else:
        kind = KIND_KEYS[kinds[0]]
        for key in raw:
            only_with = KEYS[key].only_with if key in KEYS else None
            if only_with is not None and kind not in only_with:
                names = sorted(k.value for k in only_with)
                allowed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
                problems.append((key, f"only applies to {allowed} entries, not {kind.value}"))
    return values, problems

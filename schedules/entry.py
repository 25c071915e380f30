"""One schedule entry: its typed spec, and the table that converts and checks each key.

Each key of an entry dict is one line of :data:`KEYS`: the converter that checks and
converts its value, the :class:`EntrySpec` attribute it fills, its default and, for
schedule kinds, which kind it is. Adding a key is one line there (plus the attribute).

A converter (``schedules.converters``) raises :class:`~schedules.errors.InvalidValue` with one or
more ``(sub-field, message)`` pairs; :func:`convert_keys` collects every message of every key, so one pass reports all that
is wrong with an entry. Building the trigger from the converted values is
``schedules.validate``'s job: it needs the zone and DST policy together.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schedules import converters
# The value types of the dst and retry keys, and ``show``, are this module's public names too.
from schedules.converters import DstPolicy, RetrySpec, show  # noqa: F401
from schedules.errors import InvalidValue
from schedules.trigger import Trigger


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
    "task": Key(converters.non_empty_string, "task", required=True),
    "every": Key(converters.positive_duration, kind=ScheduleKind.EVERY, shared=True),
    "cron": Key(converters.cron, kind=ScheduleKind.CRON, shared=True),
    "at": Key(converters.at, kind=ScheduleKind.AT, shared=True),
    "windows": Key(converters.windows, kind=ScheduleKind.WINDOWS, shared=True),
    "phase": Key(converters.non_negative_duration, default=0.0, only_with=_EVERY, shared=True),
    "timezone": Key(converters.timezone_name, only_with=ZONED_KINDS, shared=True),
    "dst": Key(converters.dst, "dst", only_with=_WALL_TIME),  # windows grids run in real time: no DST choice
    "args": Key(converters.json_list, "args", default=[]),
    "kwargs": Key(converters.json_mapping, "kwargs", default={}),
    "queue": Key(converters.non_empty_string, "queue"),
    "expires": Key(converters.positive_duration, "expires_s", shared=True),
    "enabled": Key(converters.boolean, "enabled", default=True),
    "description": Key(converters.string, "description", default=""),
    "expected_runtime": Key(converters.positive_duration, "expected_runtime_s", shared=True),
    "max_runs_per_hour": Key(converters.count_up_to(converters.MAX_RUNS_PER_HOUR), "max_runs_per_hour"),
    "overlap": Key(converters.choice(OverlapPolicy), "overlap"),
    "lock_ttl": Key(converters.positive_duration, "lock_ttl_s", shared=True),
    "lock_key": Key(converters.string_list, "lock_key"),
    "max_runtime": Key(converters.positive_duration, "max_runtime_s", shared=True),
    "time_limit": Key(converters.positive_duration, "time_limit_s", shared=True),
    "catchup": Key(converters.choice(CatchupPolicy), "catchup"),
    "catchup_window": Key(converters.positive_duration, "catchup_window_s", shared=True),
    "catchup_max": Key(converters.count_up_to(converters.MAX_CATCHUP_RUNS), "catchup_max"),
    "retry": Key(converters.retry, "retry"),
}
#: Keys of a Celery ``beat_schedule`` entry that beatkeeper spells otherwise.
CELERY_ONLY_KEYS = frozenset({"schedule", "options", "relative"})
CELERY_SHAPE_HINT = ("; this is a Celery beat_schedule entry: write every, cron or at (and queue, expires... "
                     "as keys), or convert it with `beatkeeper import --from-celery module:attr`")
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
            hint = CELERY_SHAPE_HINT if key in CELERY_ONLY_KEYS else ""
            problems.append((str(key), f"unknown key{converters.close_match_hint(key, KEYS)}{hint}"))
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

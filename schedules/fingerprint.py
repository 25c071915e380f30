"""The canonical form of an entry, and the fingerprint of a registered schedule.

Canonical means: two configs that schedule the same thing look the same. Durations are
float seconds ("2m" and 120 both become 120.0), cron text has single spaces, window hours
and days are compact ranges, keys left at their default are dropped, and the zone of a
wall-clock entry is always written out (so changing ``BEATKEEPER_TIMEZONE`` changes the
fingerprint of the entries it affects).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from schedules.cronexpr import CronExpr
from schedules.entry import KEYS, ZONED_KINDS, DstPolicy, EntrySpec, ScheduleKind, RetrySpec
from schedules.windows import Window


def canonical_config(values: Mapping[str, Any], *, timezone: str, kind: ScheduleKind) -> dict[str, Any]:
    """The JSON-able canonical dict of an entry from its converted key values."""
    config: dict[str, Any] = {}
    for key, value in values.items():
        spec = KEYS[key]
        if key == "timezone" or (spec.kind is None and value == spec.default):
            continue
        config[key] = _jsonable(value)
    if kind in ZONED_KINDS:
        config["timezone"] = timezone
    return config


def fingerprint(entries: Mapping[str, EntrySpec]) -> str:
    """sha256 hex of the canonical JSON of ``entries`` (name -> config); order-independent."""
    document = {name: spec.config for name, spec in entries.items()}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_PLAIN = (str, int, float, bool, type(None))


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, CronExpr):
        return value.source
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, DstPolicy):
        return {name: policy.value for name, policy in (("gap", value.gap), ("repeat", value.repeat)) if policy}
    if isinstance(value, RetrySpec):
        return value.as_fields()
    if isinstance(value, Window):
        return _window_config(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def _window_config(window: Window) -> dict[str, Any]:
    config: dict[str, Any] = {"every": float(window.every_s)}
    if window.hours is not None:
        config["hours"] = compact_ranges(window.hours)
    if window.days_of_week is not None:
        config["days"] = compact_ranges(window.days_of_week)
    if window.phase_s:
        config["phase"] = float(window.phase_s)
    return config


def compact_ranges(values: frozenset[int]) -> str:
    """{7, 8, 9, 17} -> "7-9,17": one text for equal sets however they were written."""
    ordered = sorted(values)
    runs: list[str] = []
    start = previous = ordered[0]
    for value in ordered[1:]:
        if value != previous + 1:
            runs.append(str(start) if start == previous else f"{start}-{previous}")
            start = value
        previous = value
    runs.append(str(start) if start == previous else f"{start}-{previous}")
    return ",".join(runs)

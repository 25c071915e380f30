"""Triggers as JSON-able dicts and back: how beat stores an entry's schedule in Redis.

The dict keeps exactly what decides the fire instants (durations as the seconds given,
zones by IANA name, DST policies by value), so a decoded trigger fires at the same
instants as the one encoded. ``"codec"`` versions the layout for stored data.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from schedules.cron import CronTrigger
from schedules.errors import TriggerDecodeError
from schedules.interval import IntervalTrigger
from schedules.oneoff import AtTrigger
from schedules.trigger import Trigger
from schedules.windows import Window, WindowsTrigger

CODEC_VERSION = 1


def trigger_to_dict(trigger: Trigger) -> dict[str, Any]:
    """The JSON-able dict of ``trigger`` (every kind: interval, cron, at, windows)."""
    for trigger_type, (kind, encode) in _ENCODERS.items():
        if type(trigger) is trigger_type:
            return {"codec": CODEC_VERSION, "kind": kind, **encode(trigger)}
    raise TypeError(f"no codec for {type(trigger).__name__}")


def trigger_from_dict(data: Mapping[str, Any]) -> Trigger:
    """The trigger ``data`` describes; raises TriggerDecodeError for anything else."""
    if not isinstance(data, Mapping):
        raise TriggerDecodeError(data, "expected a mapping")
    if data.get("codec") != CODEC_VERSION:
        raise TriggerDecodeError(data, f"unsupported codec version {data.get('codec')!r} (expected {CODEC_VERSION})")
    kind = data.get("kind")
    decode = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decode is None:
        raise TriggerDecodeError(data, f"unknown kind {kind!r}")
    try:
        return decode(data)
    except (KeyError, TypeError, ValueError) as exc:  # a stored dict written by hand or by a bug
        raise TriggerDecodeError(data, f"{type(exc).__name__}: {exc}") from None


# -- interval --------------------------------------------------------------------------------
def _encode_interval(trigger: IntervalTrigger) -> dict[str, Any]:
    return {"every_s": trigger.every_s, "phase_s": trigger.phase_s}


def _decode_interval(data: Mapping[str, Any]) -> IntervalTrigger:
    return IntervalTrigger(data["every_s"], phase_s=data.get("phase_s", 0.0))


# -- cron ------------------------------------------------------------------------------------
def _encode_cron(trigger: CronTrigger) -> dict[str, Any]:
    return {"cron": trigger.expr.source, "timezone": trigger.timezone,
            "gap": trigger.gap.value, "repeat": trigger.repeat.value}


def _decode_cron(data: Mapping[str, Any]) -> CronTrigger:
    return CronTrigger(data["cron"], timezone=data["timezone"], gap=data.get("gap"), repeat=data.get("repeat"))


# -- at --------------------------------------------------------------------------------------
def _encode_at(trigger: AtTrigger) -> dict[str, Any]:
    return {
        "at": trigger.at.isoformat(),  # UTC, microseconds kept
        "timezone": trigger.timezone,
        "local_time": None if trigger.local_time is None else trigger.local_time.isoformat(),
        "resolution": trigger.resolution,
    }


def _decode_at(data: Mapping[str, Any]) -> AtTrigger:
    local = data.get("local_time")
    trigger = AtTrigger(datetime.fromisoformat(data["at"]), timezone=data["timezone"],
                        local_time=None if local is None else datetime.fromisoformat(local))
    trigger.resolution = data.get("resolution", "exact")
    return trigger


# -- windows ---------------------------------------------------------------------------------
def _encode_windows(trigger: WindowsTrigger) -> dict[str, Any]:
    return {"timezone": trigger.timezone, "windows": [_encode_window(w) for w in trigger.windows]}


def _encode_window(window: Window) -> dict[str, Any]:
    return {
        "every_s": window.every_s,
        "phase_s": window.phase_s,
        "hours": None if window.hours is None else sorted(window.hours),
        "days_of_week": None if window.days_of_week is None else sorted(window.days_of_week),
    }


def _decode_windows(data: Mapping[str, Any]) -> WindowsTrigger:
    windows = [
        Window(
            item["every_s"],
            hours=None if item.get("hours") is None else frozenset(item["hours"]),
            days_of_week=None if item.get("days_of_week") is None else frozenset(item["days_of_week"]),
            phase_s=item.get("phase_s", 0.0),
        )
        for item in data["windows"]
    ]
    return WindowsTrigger(windows, timezone=data["timezone"])


_ENCODERS: dict[type, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    IntervalTrigger: ("every", _encode_interval),
    CronTrigger: ("cron", _encode_cron),
    AtTrigger: ("at", _encode_at),
    WindowsTrigger: ("windows", _encode_windows),
}
_DECODERS: dict[str, Callable[[Mapping[str, Any]], Trigger]] = {
    "every": _decode_interval,
    "cron": _decode_cron,
    "at": _decode_at,
    "windows": _decode_windows,
}

"""One schedule entry: its typed spec, and the table that converts and checks each key.

Each key of an entry dict is one line of :data:`KEYS`: the converter that checks and
converts its value, its default, the spec attribute it fills and, for schedule kinds,
which kind it is. Adding a key is adding a line (and the attribute on :class:`EntrySpec`).

A converter raises :class:`Invalid` with one or more messages; conversion collects every
message of every key, so one pass reports all that is wrong with an entry.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from schedules.cron import GapPolicy, RepeatPolicy
from schedules.durations import parse_duration_s
from schedules.errors import DurationError
from schedules.trigger import Trigger
from schedules.windows_config import convert_windows
from schedules.values import Invalid, show, jsonable_copy
from schedules.zones import is_valid_timezone


class ScheduleKind(StrEnum):
    """The four ways an entry says when it fires; exactly one per entry."""

    EVERY = "every"
    CRON = "cron"
    AT = "at"
    WINDOWS = "windows"


ZONED_KINDS = frozenset({ScheduleKind.CRON, ScheduleKind.AT, ScheduleKind.WINDOWS})


class OverlapPolicy(StrEnum):
    """What beat does when a run is due while the previous one still runs."""

    ALLOW = "allow"
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"


class CatchupPolicy(StrEnum):
    """What beat does with fires missed while it was down."""

    SKIP = "skip"
    LATEST = "latest"
    ALL = "all"

"""Platform events (overlap detected, budget exceeded, long run, schedule changed...) as one
Redis stream, capped in length, that the monitor reads and alerts on.

``redis-cli xrevrange beatkeeper:events + - count 10`` shows the latest.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from monitoring.namespace import namespaced

EVENTS_KEY = namespaced("beatkeeper:events")
EVENTS_MAX_LEN = 100_000  # entries kept (approximate trim)


@dataclass(frozen=True)
class Event:
    id: str
    kind: str  # e.g. "overlap_detected", "budget_exceeded", "long_run", "schedule_changed"
    subject: str  # what it is about: an entry or task name
    at: float  # unix seconds
    data: dict[str, Any]


def record_event(client: redis.Redis, kind: str, subject: str, *, at: float | None = None,
                 **data: Any) -> str:
    """Append one event; returns its stream id."""
    fields = {"kind": kind, "subject": subject, "at": repr(time.time() if at is None else at),
              "data": json.dumps(data, default=str, sort_keys=True)}
    return client.xadd(EVENTS_KEY, fields, maxlen=EVENTS_MAX_LEN, approximate=True)


def read_events(client: redis.Redis, *, after_id: str = "-", kind: str | None = None,
                count: int = 1000) -> list[Event]:
    """Events after ``after_id`` (exclusive; '-' for the start), oldest first, optionally of one kind."""
    start = after_id if after_id == "-" else f"({after_id}"
    events = []
    for event_id, fields in client.xrange(EVENTS_KEY, min=start, max="+", count=count):
        fields = {_text(k): _text(v) for k, v in fields.items()}
        if kind is None or fields["kind"] == kind:
            events.append(Event(id=_text(event_id), kind=fields["kind"], subject=fields["subject"],
                                at=float(fields["at"]), data=json.loads(fields["data"])))
    return events


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

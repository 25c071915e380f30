"""Platform events (overlap detected, budget exceeded, long run, schedule changed...) as one
Redis stream, capped in length, that the monitor reads and alerts on.

``redis-cli xrevrange beatkeeper:events + - count 10`` shows the latest.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis

from monitoring.namespace import namespaced

EVENTS_KEY = namespaced("beatkeeper:events")
EVENTS_MAX_LEN = 100_000  # entries kept (approximate trim)


class EventKind(str, Enum):
    """Every kind of event the platform writes (the monitor's rules read them by these names)."""

    OVERLAP_DETECTED = "overlap_detected"  # a run was skipped, or lost its lock, for overlap
    BUDGET_EXCEEDED = "budget_exceeded"  # a task ran past its runs-per-hour budget
    LONG_RUN = "long_run"  # a run passed its max_runtime_s
    RUN_LOST = "run_lost"  # a run's worker died: its lock expired before it released it
    RUN_DEAD_LETTERED = "run_dead_lettered"  # a run's workers kept dying: dead-lettered
    TASK_UNKNOWN = "task_unknown"  # a message named a task the worker does not know
    MESSAGE_REJECTED = "message_rejected"  # a message the worker refused unread (poison)
    SCHEDULE_CHANGED = "schedule_changed"  # beat started with another schedule than last time
    SCHEDULE_ENTRY_RESTORED = "schedule_entry_restored"  # an entry vanished from redbeat: restored
    MISSED_RUNS = "missed_runs"  # instants an entry missed (its catch-up policy ran some)
    DISPATCH_LOST = "dispatch_lost"  # the broker accepted a dispatch no worker received
    DISPATCH_RESENT = "dispatch_resent"  # ... and beat sent it again
    ENTRY_TRIGGERED = "entry_triggered"  # someone ran an entry (or a dead letter) by hand
    PIPELINE_FAILED = "pipeline_failed"
    PIPELINE_STALLED = "pipeline_stalled"
    DASHBOARD_ACTION = "dashboard_action"  # someone acted from the dashboard


@dataclass(frozen=True)
class Event:
    id: str
    kind: str  # an EventKind's value (a newer writer's unknown kind is kept as its text)
    subject: str  # what it is about: an entry or task name
    at: float  # unix seconds
    data: dict[str, Any]


def record_event(client: redis.Redis, kind: EventKind | str, subject: str, *, at: float | None = None,
                 **data: Any) -> str:
    """Append one event; returns its stream id."""
    fields = {"kind": kind.value if isinstance(kind, EventKind) else kind, "subject": subject, "at": repr(time.time() if at is None else at),
              "data": json.dumps(data, default=str, sort_keys=True)}
    return client.xadd(EVENTS_KEY, fields, maxlen=EVENTS_MAX_LEN, approximate=True)


def read_events(client: redis.Redis, *, after_id: str = "-", kind: str | None = None,
                count: int = 1000) -> list[Event]:
    """Events after ``after_id`` (exclusive; '-' for the start), oldest first, optionally of one kind."""
    start = after_id if after_id == "-" else f"({after_id}"
    events = []
    for event_id, fields in client.xrange(EVENTS_KEY, min=start, max="+", count=count):
        fields = {k: v for k, v in fields.items()}
        if kind is None or fields["kind"] == kind:
            events.append(Event(id=event_id, kind=fields["kind"], subject=fields["subject"],
                                at=float(fields["at"]), data=json.loads(fields["data"])))
    return events


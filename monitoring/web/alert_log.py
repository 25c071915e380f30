"""Recently resolved alerts, for the alerts page: the monitor stages each ``resolved``
notification into a capped Redis list in the same transaction that removes the alert."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from monitoring.alerts import Notification, NotificationKind
from monitoring.namespace import namespaced

RESOLVED_KEY = namespaced("beatkeeper:monitor:resolved")  # list of Notification JSON, newest first
RESOLVED_KEPT = 200


def stage_resolved(pipe: Any, notifications: Sequence[Notification]) -> None:
    resolved = [n.to_json() for n in notifications if n.kind is NotificationKind.RESOLVED]
    if resolved:
        pipe.lpush(RESOLVED_KEY, *resolved)
        pipe.ltrim(RESOLVED_KEY, 0, RESOLVED_KEPT - 1)


def recent_resolved(client: redis.Redis, *, limit: int = 50) -> list[dict[str, Any]]:
    """The latest resolved alerts, newest first: the alert's fields plus ``since`` and ``resolved_at`` (unix seconds)."""
    found = []
    for raw in client.lrange(RESOLVED_KEY, 0, limit - 1):
        note = Notification.from_json(raw)
        found.append({**note.alert.to_dict(), "resolved_at": note.at, "since": note.since})
    return found

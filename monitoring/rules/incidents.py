"""Open incidents of rules that consume occurrences (events, failed runs, missed fires).

Such a rule reads what happened since its cursor, opens or updates an incident per
subject, and closes it when its own clearing condition holds (a success, a quiet period).
An incident fires as an alert while open. It is closed only in an evaluation *after* the
one that opened it, so even an occurrence that cleared at once is seen firing once (and
resolved next time). Incidents, cursor and counters are written in one transaction, so a
restart neither repeats nor skips an occurrence.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from monitoring.rules.base import MONITOR_PREFIX


@dataclass
class Incident:
    subject: str
    opened_at: float  # the evaluation instant that opened it (unix seconds)
    first_at: float  # the first occurrence (unix seconds)
    last_at: float  # the latest occurrence
    count: int = 1
    seen_at: float = 0.0  # the evaluation instant that saw the latest occurrence
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Incident:
        return cls(**json.loads(raw))

    def closable_at(self, now: float) -> bool:
        """Whether an evaluation at ``now`` may close it (not the one that opened it)."""
        return now > self.opened_at


class IncidentBook:
    """One rule's open incidents: a Redis hash, subject -> Incident JSON."""

    def __init__(self, client: redis.Redis, rule: str):
        self.client = client
        self.key = f"{MONITOR_PREFIX}incidents:{rule}"

    def load(self) -> dict[str, Incident]:
        return {k: Incident.from_json(v)
                for k, v in self.client.hgetall(self.key).items()}

    def stage(self, pipe: Any, *, upsert: Mapping[str, Incident], close: Iterable[str]) -> None:
        if upsert:
            pipe.hset(self.key, mapping={subject: incident.to_json() for subject, incident in upsert.items()})
        closed = [s for s in close if s not in upsert]
        if closed:
            pipe.hdel(self.key, *closed)


def cursor_key(rule: str) -> str:
    """Where a rule keeps how far it has read."""
    return f"{MONITOR_PREFIX}cursor:{rule}"

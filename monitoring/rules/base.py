"""What every rule shares: the context of one evaluation, the Rule interface, the Redis keys.

A rule is asked once per evaluation which of its alerts fire *now*; it never sends anything.
Its ``needs`` say what must be reachable for its answer to mean something: when Redis or
the history database is away, a rule needing it is not asked, and its alerts stay exactly
as they were (no false "resolved"), while the outage itself alerts.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import redis

from monitoring.alerts import Alert
from monitoring.history import HistoryStore
from monitoring.namespace import namespaced
from monitoring.pauses import PauseSpan, PauseStore
from monitoring.rules.settings import RuleSettings
from schedules.entry import EntrySpec
from schedules.zones import zone

MONITOR_PREFIX = namespaced("beatkeeper:monitor:")
NEEDS_REDIS = "redis"
NEEDS_HISTORY = "history"
NEEDS_WORKERS = "workers"


@dataclass(frozen=True)
class PlatformKeys:
    """Names the task side owns; the CLI passes the app's (monitoring never imports ``tasks``)."""

    redbeat_prefix: str = "redbeat:"  # celeryconfig.redbeat_key_prefix
    lock_prefix: str = namespaced("beatkeeper:lock:")  # tasks.policy.LOCK_PREFIX
    lock_meta_suffix: str = ":meta"  # tasks.locks.fenced.META_SUFFIX
    heartbeat_task: str = "beatkeeper.heartbeat"
    default_queue: str = "default"

    @property
    def redbeat_schedule_key(self) -> str:
        return self.redbeat_prefix + ":schedule"

    @property
    def redbeat_lock_key(self) -> str:
        return self.redbeat_prefix + ":lock"


class WorkerProbe(Protocol):
    def consumers(self) -> dict[str, list[str]]:
        """Each live worker and the queues it consumes; raises when the question cannot be asked."""


@dataclass
class RuleContext:
    """Everything one evaluation knows; ``now`` is the injected clock's reading (unix seconds)."""

    now: float
    client: redis.Redis
    specs: Mapping[str, EntrySpec]  # the registered entries (kill switches applied)
    settings: RuleSettings
    keys: PlatformKeys
    first_start: float  # unix seconds the monitor first ever started (kept in Redis)
    history: HistoryStore | None = None
    workers: WorkerProbe | None = None
    queue_of: Callable[[EntrySpec], str] | None = None
    broker: Any = None  # monitoring.broker_queues.BrokerProbe: queue depth from the broker (None: this Redis)
    redis_error: str | None = None
    history_error: str | None = None
    cache: dict[str, Any] = field(default_factory=dict)  # facts several rules read once per evaluation

    @property
    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, timezone.utc)

    def queue(self, spec: EntrySpec) -> str:
        if self.queue_of is not None:
            return self.queue_of(spec)
        return spec.queue or self.keys.default_queue

    def pause_spans(self) -> dict[str, list[PauseSpan]]:
        """Per entry or task name, its current and latest ended pause (read once per evaluation)."""
        if "pause_spans" not in self.cache:
            self.cache["pause_spans"] = PauseStore(self.client).spans(now=self.now)
        return self.cache["pause_spans"]

    def redbeat_entries(self) -> set[str]:
        """Entry names beat has registered in redbeat's schedule (read once per evaluation)."""
        if "redbeat_entries" not in self.cache:
            prefix = self.keys.redbeat_prefix
            self.cache["redbeat_entries"] = {
                m.removeprefix(prefix) for m in self.client.zrange(self.keys.redbeat_schedule_key, 0, -1)}
        return self.cache["redbeat_entries"]


class Rule(ABC):
    """A check; ``names`` are the alert rules it owns (only those are resolved when it answers)."""

    names: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset({NEEDS_REDIS})

    @abstractmethod
    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        """The alerts of this rule firing at ``ctx.now``."""

    def resolution(self, ctx: RuleContext, alert: Alert) -> str:
        """The current situation, said when ``alert`` resolves (rules that can tell more override it)."""
        return f"cleared (it said: {alert.summary})"


def local_and_utc(instant: datetime, zone_name: str) -> str:
    """``2026-10-04T03:00:00+11:00 (16:00:00Z)``: the entry's wall clock and UTC."""
    local = instant.astimezone(zone(zone_name)).isoformat(timespec="seconds")
    return f"{local} ({instant.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')})"


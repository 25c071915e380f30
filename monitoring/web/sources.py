"""Where the dashboard reads from: handed over by the composition root (``tasks/cli/monitor.py``),
so this package knows no app, only Redis, the history and the schedule's specs."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from monitoring.history import HistoryStore
from monitoring.namespace import namespaced
from monitoring.pipelines import PipelineStore
from monitoring.rules.base import PlatformKeys
from schedules.entry import EntrySpec


@dataclass
class DashboardSources:
    client: redis.Redis
    specs: Callable[[], Mapping[str, EntrySpec]]  # the entries registered now (file and dynamic)
    history: HistoryStore | None = None
    keys: PlatformKeys = PlatformKeys()
    queue_of: Callable[[EntrySpec], str] | None = None
    queues: Callable[[], dict[str, dict[str, Any]] | None] = lambda: None  # the monitor's latest queue report
    pipelines: PipelineStore | None = None
    dead_letters_key: str = namespaced("beatkeeper:dead_letters")  # tasks.guard.identity.DEAD_LETTERS_KEY, passed in by the app
    flower_url: str | None = None  # BEATKEEPER_FLOWER_URL: links each run to Flower's task page
    late_after_s: float = 60.0  # a run that started later than this after its instant is "late"
    clock: Callable[[], float] = time.time

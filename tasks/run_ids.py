"""How beat and the workers name one run: its run id, where Redis keeps its claim, the states
that claim goes through, and which tasks claim one at all.

Beat reads these (the catch-up gate asks whether the previous run ended, the delivery watch
whether a worker took a dispatch); the worker's guard writes them (``tasks.guard.claim``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from celery.utils.imports import symbol_by_name

from monitoring.namespace import namespaced
from tasks.locks.fenced import META_SUFFIX

RUN_KEY_PREFIX = namespaced("beatkeeper:run:")  # + run id: the lease; + ":meta": the run's record (hash)


class ClaimState(str, Enum):
    """The state a run id's record is in."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a later delivery may run it again
    RETRYING = "retrying"  # only the task's own retry (same task id, higher attempt) may claim it
    SKIPPED = "skipped"  # an inner middleware skipped it on purpose: final
    DEAD = "dead"  # dead-lettered: final


def run_id_for(*, entry: str, fire_at: datetime | None, task_id: str) -> str:
    """The identity of a run: ``entry|fire instant (UTC, ISO)``; a hand-triggered run's own task id."""
    if entry and fire_at is not None:
        moment = fire_at.replace(tzinfo=timezone.utc) if fire_at.tzinfo is None else fire_at.astimezone(timezone.utc)
        return f"{entry}|{moment.isoformat()}"
    return f"task:{task_id}"


def record_key(run_id: str) -> str:
    """The Redis hash holding a run id's record (exists once a delivery claimed the run)."""
    return RUN_KEY_PREFIX + run_id + META_SUFFIX


def is_guarded(app: Any, task: Any) -> bool:
    """Whether ``task`` runs inside the app's guard (an instance of the app's ``task_cls``), so its
    runs claim a run id. A task that names another ``base``, or one this process does not
    import (None), does not."""
    return task is not None and isinstance(task, symbol_by_name(app.task_cls))

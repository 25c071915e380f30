"""The message headers beat adds to each dispatch, read back by the worker.

They ride in the Celery message headers, so ``task.request`` exposes them as attributes.
They say which entry and instant a run is, never how it runs: an entry's policy and retry
policy reach the worker only as beat published them (``tasks.policy.PublishedPolicies``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from monitoring.namespace import namespaced

ENTRY = "beatkeeper_entry"  # the schedule entry's name
FIRE_AT = "beatkeeper_fire_at"  # the scheduled fire instant, ISO-8601 UTC
TRIGGERED_BY = "beatkeeper_triggered_by"  # who ran an entry by hand (``tasks.actions.trigger``)
PIPELINE_RUN = "beatkeeper_pipeline_run_id"  # the pipeline run a step belongs to (its history rows carry it)

BEAT_FENCE = "beatkeeper_beat_fence"  # the fencing token of the beat that sent the dispatch (an int, as text)
BEAT_EPOCH_KEY = namespaced("beatkeeper:beat:epoch")  # hash {fence, since}: the newest beat lock holder's token, and when it took the lock (unix s)

#: Headers a retry's message must carry again: Celery does not copy custom headers on retry.
#: The entry's name is what the retry's worker finds the entry's published policies by.
CARRIED_ON_RETRY = (ENTRY, FIRE_AT, PIPELINE_RUN)


def dispatch_headers(entry: str, fire_at: datetime) -> dict[str, str]:
    """Headers for one scheduled dispatch of ``entry`` at ``fire_at``."""
    return {ENTRY: entry, FIRE_AT: fire_at.astimezone(timezone.utc).isoformat()}


def run_label(task_name: str, sent: Mapping[str, Any]) -> str | None:
    """The run's name in events and Flower: ``task [entry @ instant]``, ``task [entry @ manual]``
    for an entry run by hand; None (the task's own name) outside an entry."""
    entry = sent.get(ENTRY)
    return f"{task_name} [{entry} @ {sent.get(FIRE_AT) or 'manual'}]" if entry else None


def entry_of(request: Any) -> str:
    """The schedule entry a request came from; '' for a hand-triggered run."""
    return getattr(request, ENTRY, None) or ""


def fire_at_of(request: Any) -> datetime | None:
    """The scheduled fire instant of a request; None for a hand-triggered run."""
    raw = getattr(request, FIRE_AT, None)
    return datetime.fromisoformat(raw) if raw else None


def pipeline_run_of(request: Any) -> str | None:
    """The pipeline run a request is a step of; None outside a pipeline."""
    return getattr(request, PIPELINE_RUN, None) or None


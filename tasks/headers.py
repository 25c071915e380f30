"""The message headers beat adds to each dispatch, read back by the worker.

They ride in the Celery message headers, so ``task.request`` exposes them as attributes.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

ENTRY = "beatkeeper_entry"  # the schedule entry's name
FIRE_AT = "beatkeeper_fire_at"  # the scheduled fire instant, ISO-8601 UTC


def dispatch_headers(entry: str, fire_at: datetime) -> dict[str, str]:
    """Headers for one scheduled dispatch of ``entry`` at ``fire_at``."""
    return {ENTRY: entry, FIRE_AT: fire_at.astimezone(timezone.utc).isoformat()}


def entry_of(request: Any) -> str:
    """The schedule entry a request came from; '' for a hand-triggered run."""
    return getattr(request, ENTRY, None) or ""


def fire_at_of(request: Any) -> datetime | None:
    """The scheduled fire instant of a request; None for a hand-triggered run."""
    raw = getattr(request, FIRE_AT, None)
    return datetime.fromisoformat(raw) if raw else None

"""Exponential backoff, the one formula every retry in beatkeeper waits by.

Retry ``n`` (0 for the first) waits ``min(base_s * 2**n, max_s)``; with ``jitter`` (a number in
[0, 1], e.g. ``random.random()``) the wait is scaled into [half, all] of that: the jitter spreads
the retries of many runs hit by one outage, the lower half-bound keeps a retry from coming back at
once (Celery's ``retry_backoff``/``retry_jitter`` rule, with a floor). Pure: the caller draws the jitter.
"""
from __future__ import annotations

_MAX_EXPONENT = 1000  # 2.0 ** 1024 overflows a float; any wait is capped long before


def retry_delay_s(retries: int, *, base_s: float, max_s: float, jitter: float | None = None) -> float:
    """Seconds before retry number ``retries``: ``min(base_s * 2**retries, max_s)``, scaled by
    ``0.5 + jitter / 2`` when ``jitter`` is given."""
    ceiling_s = min(base_s * 2.0 ** min(max(retries, 0), _MAX_EXPONENT), max_s)
    return ceiling_s if jitter is None else ceiling_s * (0.5 + jitter / 2)

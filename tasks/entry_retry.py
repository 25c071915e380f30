"""Retry a scheduled run's transient error as its schedule entry says (``retry`` key).

Tasks declare retries with Celery's own options (``autoretry_for``, ``retry_backoff``,
``retry_jitter``, ``max_retries``); an entry may add a policy for its runs, sent by beat in
the ``beatkeeper_retry`` header and carried by each retry. Each attempt is a history row.
"""
from __future__ import annotations

import random
from typing import Any

from celery.exceptions import Retry

from schedules.backoff import retry_delay_s
from tasks import headers


def retry_for(task: Any, request: Any, exc: BaseException) -> Retry | None:
    """The Retry to raise for ``exc`` under the entry's policy, or None when it does not apply."""
    policy = headers.retry_of(request)
    retries = request.retries or 0
    if not policy or not isinstance(exc, Exception) or retries >= policy["max_retries"]:
        return None
    wanted = set(policy.get("on") or ())
    if wanted and not wanted & {cls.__name__ for cls in type(exc).__mro__}:
        return None
    delay_s = retry_delay_s(retries, base_s=policy["backoff_s"], max_s=policy["backoff_max_s"],
                        jitter=random.random() if policy.get("jitter", True) else None)
    try:
        task.retry(exc=exc, countdown=delay_s, max_retries=policy["max_retries"])
    except Retry as retry:
        return retry
    return None

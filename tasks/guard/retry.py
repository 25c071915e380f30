"""Retry a scheduled run's transient error as its schedule entry says (``retry`` key).

Tasks declare retries with Celery's own options (``autoretry_for``, ``retry_backoff``,
``retry_jitter``, ``max_retries``); an entry may add a policy for its runs. Beat publishes it
with the entry's other policy fields (``tasks.beat.policy_publisher``) and the worker reads it from
there for each attempt, only for the task the entry names (``PublishedPolicies.entry_retry``):
a message's own headers cannot give a task retries. Each attempt is a history row.
"""
from __future__ import annotations

import random
from typing import Any

from celery.exceptions import Retry

from schedules.entry import RetrySpec


def retry_for(task: Any, request: Any, exc: BaseException, policy: RetrySpec | None) -> Retry | None:
    """The Retry to raise for ``exc`` under the entry's ``policy``, or None when it does not apply."""
    retries = request.retries or 0
    if policy is None or not isinstance(exc, Exception) or retries >= policy.max_retries:
        return None
    if policy.on and not set(policy.on) & {cls.__name__ for cls in type(exc).__mro__}:
        return None
    delay_s = policy.delay_s(retries, jitter=random.random())
    try:
        task.retry(exc=exc, countdown=delay_s, max_retries=policy.max_retries)
    except Retry as retry:
        return retry
    return None

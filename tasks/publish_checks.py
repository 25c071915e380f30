"""Refuse, at publish time, a countdown/ETA the Redis broker cannot keep.

The Redis transport holds an ETA message unacknowledged in the worker; once the
broker's ``visibility_timeout`` passes it is redelivered — to another worker too — so an
ETA beyond half of it runs twice. Such delays belong in the schedule (``at`` entries).
"""
from __future__ import annotations

from datetime import datetime, timezone

from celery.signals import before_task_publish


class DelayTooLong(ValueError):
    """A countdown/ETA longer than the broker can hold without redelivering; carries the figures."""

    def __init__(self, task: str, delay_s: float, limit_s: float):
        self.task, self.delay_s, self.limit_s = task, delay_s, limit_s
        super().__init__(f"{task}: countdown/eta of {delay_s:.0f}s exceeds {limit_s:.0f}s (half the broker's "
                         "visibility_timeout): the Redis broker would redeliver it; use a schedule `at` entry instead")


def max_delay_s(app) -> float:
    return app.conf.broker_transport_options.get("visibility_timeout", 3600) / 2


@before_task_publish.connect
def refuse_long_delays(sender=None, headers=None, **kwargs) -> None:
    eta = (headers or {}).get("eta")
    if not eta:
        return
    from tasks.application import app

    delay_s = (datetime.fromisoformat(eta).astimezone(timezone.utc) - datetime.now(timezone.utc)).total_seconds()
    if delay_s > max_delay_s(app):
        raise DelayTooLong(sender or "task", delay_s, max_delay_s(app))

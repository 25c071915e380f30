"""Refuse, at the API, a countdown/ETA the Redis broker cannot keep.

The Redis transport holds an ETA message unacknowledged in the worker; once the
broker's ``visibility_timeout`` passes it is redelivered — to another worker too — so an
ETA beyond half of it runs twice. Such delays belong in the schedule (``at`` entries).
The guarded task base calls :func:`refuse_long_delay` from ``apply_async``.
"""
from __future__ import annotations

from datetime import datetime, timezone


class DelayTooLong(ValueError):
    """A countdown/ETA longer than the broker can hold without redelivering; carries the figures."""

    def __init__(self, task: str, delay_s: float, limit_s: float):
        self.task, self.delay_s, self.limit_s = task, delay_s, limit_s
        super().__init__(f"{task}: countdown/eta of {delay_s:.0f}s exceeds {limit_s:.0f}s (half the broker's "
                         "visibility_timeout): the Redis broker would redeliver it; use a schedule `at` entry instead")


def max_delay_s(app) -> float:
    return app.conf.broker_transport_options.get("visibility_timeout", 3600) / 2


def refuse_long_delay(app, task_name: str, *, countdown: float | None = None,
                      eta: datetime | str | None = None) -> None:
    """Raise DelayTooLong when ``countdown``/``eta`` reaches past half the visibility timeout."""
    if countdown is not None:
        delay_s = float(countdown)
    elif eta is not None:
        moment = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        delay_s = (moment - datetime.now(timezone.utc)).total_seconds()
    else:
        return
    if delay_s > max_delay_s(app):
        raise DelayTooLong(task_name, delay_s, max_delay_s(app))

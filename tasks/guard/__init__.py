"""Runs on the worker, around every run of every task: the guarded task base (the app's
``task_cls``), the middleware base, one module per middleware, the entry's retry policy, and
the Run/Outcome the middlewares see.

The default middleware order is declared here, once (:func:`standard_middlewares`);
``tasks.wiring`` builds the list with the app's shared objects.
``task_cls="tasks.guard:GuardedTask"`` resolves through this package (imported on that first use).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from monitoring.history import HistoryStore
from tasks.guard.budget import BudgetLimits, BudgetMiddleware
from tasks.guard.history import DRAINER, HistoryMiddleware
from tasks.guard.identity import identity_middleware_for
from tasks.guard.longrun import LongRunMiddleware
from tasks.guard.metrics import MetricsMiddleware
from tasks.guard.middleware import Middleware
from tasks.guard.overlap import OverlapMiddleware
from tasks.guard.pause import PauseMiddleware
from tasks.guard.policy_check import PolicyCheckMiddleware
from tasks.policy import PublishedPolicies

__all__ = ["GuardedTask", "standard_middlewares"]


def standard_middlewares(app: Any, *, client: redis.Redis | None = None,
                         history: Callable[[], HistoryStore] | None = None,
                         published: Callable[[], PublishedPolicies] | None = None) -> list[Middleware]:
    """The one place the middleware order is set, outermost first.

    Run identity is inside history/metrics (duplicates are recorded) and ahead of pause,
    budget and overlap (a duplicate spends no budget and takes no lock).
    Long-run detection is innermost so it times only the body.

    ``client``, ``history``, ``published``: the app's Redis client, history store and published
    policies (read on each use, so a replaced one is seen); left out, the app's own
    (``app.beatkeeper``, ``tasks.wiring``).
    """
    client = client or app.beatkeeper.redis
    history = history or (lambda: app.beatkeeper.history)
    published = published or (lambda: app.beatkeeper.published)
    return [HistoryMiddleware(history(), drainer=DRAINER), MetricsMiddleware(client),
            identity_middleware_for(app, client, history=history), PolicyCheckMiddleware(), PauseMiddleware(client),
            BudgetMiddleware(client, limits=lambda: BudgetLimits.from_app(app, published=published)),
            OverlapMiddleware(client), LongRunMiddleware(client)]


def __getattr__(name: str) -> Any:
    if name == "GuardedTask":
        from tasks.guard.task import GuardedTask

        return GuardedTask
    raise AttributeError(f"module 'tasks.guard' has no attribute {name!r}")

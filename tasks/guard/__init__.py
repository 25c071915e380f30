"""Runs on the worker, around every run of every task: the guarded task base (the app's
``task_cls``), the middleware base and the middlewares in their default order (identity and
its claim, overlap, pause, budget, long runs, history, metrics), the entry's retry policy, and
the Run/Outcome the middlewares see.

``task_cls="tasks.guard:GuardedTask"`` resolves through this package (imported on that first use).
"""
from __future__ import annotations

from typing import Any

__all__ = ["GuardedTask"]


def __getattr__(name: str) -> Any:
    if name == "GuardedTask":
        from tasks.guard.task import GuardedTask

        return GuardedTask
    raise AttributeError(f"module 'tasks.guard' has no attribute {name!r}")

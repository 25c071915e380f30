"""Runs in the beat process only: the scheduler (redbeat's, overriding only what correctness
needs), the beat lock's whole life, the entries beat stores in Redis and the one-round-trip read
of what is due, the dispatch of each instant, the watch on dispatches no worker received, the
catch-up gate, the start-up self-checks, and the validated schedule it loads.

``celeryconfig.beat_scheduler = "tasks.beat:BeatkeeperScheduler"`` resolves through this
package; the scheduler (and redbeat) is imported on that first use only.
"""
from __future__ import annotations

from typing import Any

__all__ = ["BeatkeeperScheduler"]


def __getattr__(name: str) -> Any:
    if name == "BeatkeeperScheduler":
        from tasks.beat.scheduler import BeatkeeperScheduler

        return BeatkeeperScheduler
    raise AttributeError(f"module 'tasks.beat' has no attribute {name!r}")

"""beatkeeper's task side: the Celery app, its task base, locks, beat and the CLI.

``celery -A tasks worker|beat|call`` works from the repository root.

The app is imported on first use (``tasks.app``, ``from tasks import app``), not with the
package: ``make run`` (``python -m tasks.cli.runner``) refuses a down Redis or database before
paying for Celery's and SQLAlchemy's imports, seconds on a loaded machine.
"""
from __future__ import annotations

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from tasks.application import app

        return app
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")

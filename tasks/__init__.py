"""beatkeeper's task side: the Celery app, its task base, locks, beat and the CLI.

``celery -A tasks worker|beat|call`` works from the repository root.
"""
from tasks.application import app

__all__ = ["app"]

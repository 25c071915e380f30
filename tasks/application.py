"""The Celery app. ``celery -A tasks ...`` finds it as ``tasks.app``.

Your own task modules join with ``BEATKEEPER_TASK_MODULES=myapp.jobs,myapp.sweeps``:
workers, beat and the CLI then all register them.
"""
from __future__ import annotations

import os

from celery import Celery

#: Modules whose tasks every worker, beat and the CLI register.
BUILTIN_TASK_MODULES = ["tasks.builtin", "tasks.maintenance", "tasks.gtfs_tasks", "tasks.pipeline_tasks"]


def task_modules(environ=os.environ) -> list[str]:
    extra = [m.strip() for m in environ.get("BEATKEEPER_TASK_MODULES", "").split(",") if m.strip()]
    return BUILTIN_TASK_MODULES + extra


# Every task, the platform's and the user's, gets the guarded base (overlap policies, locks,
# middlewares) unless it names another ``base``.
app = Celery("beatkeeper", include=task_modules(), task_cls="tasks.guard:GuardedTask")
app.config_from_object("celeryconfig")

"""The Celery app. ``celery -A tasks ...`` finds it as ``tasks.app``."""
from __future__ import annotations

from celery import Celery

#: Modules whose tasks every worker, beat and the CLI register.
TASK_MODULES = ["tasks.builtin"]

app = Celery("beatkeeper", include=TASK_MODULES)
app.config_from_object("celeryconfig")

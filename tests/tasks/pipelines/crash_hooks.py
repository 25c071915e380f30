"""Test-only: a worker that loads this module (``BEATKEEPER_TASK_MODULES=tests.tasks.pipelines.crash_hooks``)
and has ``PIPELINE_CRASH_HOOK=1`` kills itself with SIGKILL the moment it is about to send a
task whose crash flag is set in Redis: after the previous step committed, before the next
step reaches the broker. Each flag fires once. Nothing here is imported by production code.
"""
from __future__ import annotations

import os
import signal
from typing import Any

from celery import signals

from tasks.application import app
from tasks.infra.redis_client import app_redis

ENABLE_ENV = "PIPELINE_CRASH_HOOK"


def crash_key(task_name: str) -> str:
    """Set this Redis key to make the hooked worker die before it sends ``task_name``."""
    return f"test:crash-before-sending:{task_name}"


def _die_before_sending(sender: Any = None, **_: Any) -> None:
    if sender and app_redis(app).getdel(crash_key(sender)):
        os.kill(os.getpid(), signal.SIGKILL)


if os.environ.get(ENABLE_ENV) == "1":
    signals.before_task_publish.connect(_die_before_sending, weak=False)

"""Test-only: holds a task in its pool process just before the guard (``task_prerun``) while a
gate file exists, so a test can break Redis exactly when the run claims its id. Loaded by a
subprocess worker with ``BEATKEEPER_TASK_MODULES=tests.tasks.beat.ledger_tasks,tests.process.claim_gate``
and ``BEATKEEPER_TEST_GATE_DIR`` set."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import signals

from tasks import headers

GATE_DIR_ENV = "BEATKEEPER_TEST_GATE_DIR"
GATE_LIMIT_S = 60.0


@signals.task_prerun.connect
def _hold_at_the_gate(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    gate_dir = os.environ.get(GATE_DIR_ENV)
    if not gate_dir or not (Path(gate_dir) / "gate").exists() or not headers.entry_of(task.request):
        return  # only scheduled runs wait: a hand run passes
    (Path(gate_dir) / f"at-gate-{task_id}").touch()  # a file, not Redis: Redis is what the test breaks
    deadline = time.monotonic() + GATE_LIMIT_S
    while (Path(gate_dir) / "gate").exists() and time.monotonic() < deadline:
        time.sleep(0.02)

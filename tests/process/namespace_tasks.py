"""A test-only task that writes, in its own deployment's keys, who sent it and where it ran; workers
load it with ``BEATKEEPER_TASK_MODULES=tests.process.namespace_tasks``."""
from __future__ import annotations

import json
import os

from monitoring.namespace import NAMESPACE_VARIABLE, namespaced
from tasks import headers
from tasks.application import app
from tasks.infra.redis_client import app_redis

RAN_KEY = namespaced("test:ran")  # list of JSON {sent_by, ran_in, entry, fire_at, task_id}, oldest first
FAILING_ARG = "fail"


@app.task(name="tests.namespace.record", bind=True)
def record(self, sent_by: str, outcome: str = "ok", job: str = "shared") -> str:
    """Record the run, then fail when told to (a deployment's failures are its alerts, nobody else's).
    ``job`` names the overlap lock (``lock_key: [job]``): one lock name for both deployments."""
    fire_at = headers.fire_at_of(self.request)
    app_redis(app).rpush(RAN_KEY, json.dumps({
        "sent_by": sent_by, "ran_in": os.environ.get(NAMESPACE_VARIABLE, ""), "entry": headers.entry_of(self.request),
        "fire_at": fire_at.isoformat() if fire_at else None, "task_id": self.request.id}))
    if outcome == FAILING_ARG:
        raise RuntimeError(f"{sent_by} fails on purpose")
    return sent_by

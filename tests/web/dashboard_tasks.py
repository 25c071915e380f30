"""A test-only task for the dashboard's browser tests; subprocess workers load it with
``BEATKEEPER_TASK_MODULES=tests.web.dashboard_tasks``. Each run appends its arguments to a
Redis list, so a test can tell which run did work with which arguments."""
from __future__ import annotations

import json

from tasks.application import app
from tasks.infra.redis_client import app_redis

CALLS_KEY = "dashboard-test:calls"


@app.task(name="tests.dashboard.record")
def record(label: str, n: int = 0) -> None:
    app_redis(app).rpush(CALLS_KEY, json.dumps([label, n]))

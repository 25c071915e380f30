"""A real Flower (``celery -A tasks flower``, basic auth, 127.0.0.1) watching a real worker: its
API names a scheduled run by its entry and scheduled instant, and shows a skipped run ended."""
from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from monitoring.pauses import PauseStore
from tasks import headers
from tests.monitoring.databases import app_history, sqlite_url  # noqa: F401
from tests.servers import free_port, wait_until
from tests.tasks import history_tasks as ht

pytestmark = pytest.mark.process
AUTH = ("flower-test", "not-a-real-secret")


class FlowerApi:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, *, auth: bool = True) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base + path)
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(":".join(AUTH).encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def tasks(self) -> dict:
        status, body = self.get("/api/tasks")
        assert status == 200, body
        return json.loads(body)

    def answers(self) -> bool:
        try:
            return self.get("/api/tasks")[0] == 200
        except OSError:
            return False


@pytest.fixture
def flower(processes, worker) -> FlowerApi:
    port = free_port()
    proc = processes.celery("flower", f"--port={port}", "--address=127.0.0.1", f"--basic-auth={AUTH[0]}:{AUTH[1]}",
                            name="flower")
    api = FlowerApi(port)
    wait_until(lambda: proc.poll() is not None or api.answers(), timeout_s=60, interval_s=0.2,
               what="Flower to answer")
    assert proc.poll() is None, proc.log_path.read_text()[-3000:]

    def sees_a_task() -> bool:  # Flower listens to events only once its receiver is connected
        ht.ok.delay("flower-warm-up")
        time.sleep(0.5)
        return bool(api.tasks())

    wait_until(sees_a_task, timeout_s=60, interval_s=0.5, what="Flower to receive task events")
    return api


def test_flowers_api_names_a_scheduled_run_by_its_entry_and_instant(flower, app_history, redis_client):
    fire_at = datetime.now(timezone.utc).replace(microsecond=0)
    scheduled = ht.ok.apply_async(("flower",), headers=headers.dispatch_headers("nightly-report", fire_at))
    PauseStore(redis_client).pause("paused-report", now=time.time(), reason="feed outage")
    skipped = ht.ok.apply_async(("flower",), headers=headers.dispatch_headers("paused-report", fire_at))

    def shown(task_id: str, state: str) -> dict | None:
        task = flower.tasks().get(task_id)
        return task if task and task["state"] == state else None

    seen = wait_until(lambda: shown(scheduled.id, "SUCCESS"), timeout_s=30, interval_s=0.3,
                      what="Flower to show the scheduled run succeeded")
    assert seen["name"] == f"tests.history.ok [nightly-report @ {fire_at.isoformat()}]"
    ended = wait_until(lambda: shown(skipped.id, "REVOKED"), timeout_s=30, interval_s=0.3,
                       what="Flower to show the paused run ended")
    assert ended["name"].startswith("tests.history.ok [paused-report @ ")
    assert "skipped_paused" in ended["exception"] and "feed outage" in ended["exception"]
    assert flower.get("/api/tasks", auth=False)[0] == 401  # behind auth

"""The containers run for real: the image built from the Dockerfile as it is, the stack brought up
from docker-compose.yml as it is (podman-compose, rootful podman with runc), with a test .env and a
user task module and schedule file placed where the README puts them (tasks/user/, schedules/user.yaml).

No registry is reachable: the base images are stand-ins built from Debian bookworm packages
(tests/containers/standins.py): Python 3.11, Redis 7.0, and PostgreSQL 15 standing in for the
``postgres:16-alpine`` tag. podman 4.3 ignores compose's ``condition: service_healthy`` (podman-compose
needs podman >= 4.6 for it) and runs no healthcheck by itself without systemd, so the test starts
redis and postgres first and runs each healthcheck itself until it passes (bounded), as
``docker compose up`` waits for them. Everything it creates is removed at the end, even on failure.
"""
from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timedelta

import pytest

from tests.containers.podman import podman
from tests.containers.stack import BACKING_SERVICES, ONE_SHOT, Stack, write_env
from tests.servers import free_port, http_status

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1500)]
HEALTHY_TIMEOUT_S = 300  # cold Python imports of six services on a busy 2-core machine
FLOWER_AUTH = f"ops:{secrets.token_urlsafe(12)}"
APP_SERVICES = ("migrate", "worker", "worker-singleton", "beat", "flower", "monitor")


FLOWER_PORT, MONITOR_PORT = free_port(), free_port()  # 5555 and 9808 may be taken on this machine


def stack_env() -> dict[str, str]:
    return {"REDIS_PASSWORD": secrets.token_urlsafe(12), "POSTGRES_PASSWORD": secrets.token_urlsafe(12),
            "FLOWER_BASIC_AUTH": FLOWER_AUTH, "BEATKEEPER_MISSED_GRACE": "45",
            "FLOWER_HOST_PORT": str(FLOWER_PORT), "MONITOR_HOST_PORT": str(MONITOR_PORT)}


def bring_up(stack: Stack, services: list[str]) -> None:
    """In the order compose's depends_on gives: redis and postgres healthy, migrate done, the rest."""
    stack.up(*BACKING_SERVICES)
    stack.wait_healthy(list(BACKING_SERVICES), HEALTHY_TIMEOUT_S)
    stack.up(ONE_SHOT)
    stack.wait_healthy([ONE_SHOT], HEALTHY_TIMEOUT_S)
    rest = [s for s in services if s != ONE_SHOT]
    stack.up(*rest)
    stack.wait_healthy(rest, HEALTHY_TIMEOUT_S)


@pytest.fixture(scope="module")
def stack(images):
    write_env(images, stack_env())
    up = Stack(images, f"bktest{secrets.token_hex(3)}")
    try:
        bring_up(up, list(APP_SERVICES))
        yield up
    finally:
        up.down()
        assert not up.leftovers(), f"left behind: {up.leftovers()}"


def history(stack: Stack, *args: str) -> list[dict]:
    return json.loads(stack.exec("monitor", "beatkeeper", "history", "--json", "--limit", "500", *args))


def wait_for(predicate, *, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(3)




def test_every_service_is_healthy_and_reads_the_env_file(stack):
    for service in APP_SERVICES[1:]:
        assert stack.exec(service, "printenv", "BEATKEEPER_MISSED_GRACE").strip() == "45", service
    assert "ok" in stack.exec("worker", "beatkeeper", "check").lower()


def test_the_heartbeat_runs_beat_broker_worker(stack):
    runs = wait_for(lambda: [r for r in history(stack, "--entry", "beatkeeper-heartbeat", "--status", "success")],
                    timeout_s=150, what="a scheduled heartbeat recorded as a success")
    assert runs[0]["task_name"] == "beatkeeper.heartbeat" and runs[0]["fire_at"]


def test_celery_call_inside_the_worker_container_executes(stack):
    task_id = stack.exec("worker", "celery", "-A", "tasks", "call", "beatkeeper.heartbeat").strip().splitlines()[-1]
    wait_for(lambda: [r for r in history(stack, "--task", "beatkeeper.heartbeat", "--entry", "")
                      if r["task_id"] == task_id and r["status"] == "success"],
             timeout_s=90, what=f"the hand-called heartbeat {task_id} to succeed")


def test_the_monitor_answers_ready_and_flower_asks_for_credentials(stack):
    # /readyz is open for probes, like /healthz; the dashboard and /metrics ask for credentials.
    wait_for(lambda: http_status(f"http://127.0.0.1:{MONITOR_PORT}/readyz") == 200,
             timeout_s=150, what="the monitor's /readyz to answer ready (200)")
    for path in ("/", "/metrics"):
        assert http_status(f"http://127.0.0.1:{MONITOR_PORT}{path}") == 401, path
        assert http_status(f"http://127.0.0.1:{MONITOR_PORT}{path}", FLOWER_AUTH) == 200, path
    wait_for(lambda: http_status(f"http://127.0.0.1:{FLOWER_PORT}/") != 0, timeout_s=90, what="Flower to listen")
    assert http_status(f"http://127.0.0.1:{FLOWER_PORT}/") == 401
    assert http_status(f"http://127.0.0.1:{FLOWER_PORT}/", "ops:wrong") == 401
    assert http_status(f"http://127.0.0.1:{FLOWER_PORT}/", FLOWER_AUTH) == 200


def user_ticks(stack: Stack) -> list[datetime]:
    return sorted(datetime.fromisoformat(r["fire_at"]) for r in history(stack, "--entry", "stack-tick")
                  if r["status"] == "success" and r["task_name"] == "stackjobs.tick")


def test_the_users_task_module_and_schedule_file_run_in_the_containers(stack):
    ticks = wait_for(lambda: len(user_ticks(stack)) >= 2 and user_ticks(stack), timeout_s=120,
                     what="two runs of the user's stack-tick entry (tasks/user/, schedules/user.yaml)")
    assert ticks[1] - ticks[0] == timedelta(seconds=10)


def test_stopping_and_starting_beat_loses_no_instant_under_catchup_all(stack):
    wait_for(lambda: len(user_ticks(stack)) >= 1, timeout_s=120, what="a first stack-tick run")
    beat = stack.container("beat")
    podman("stop", "-t", "10", beat)
    stopped_at = datetime.now().astimezone()
    time.sleep(15)  # real downtime: instants fall due while no beat runs (catchup: all, 30 at most)
    podman("start", beat)
    stack.wait_healthy(["beat"], HEALTHY_TIMEOUT_S)
    wait_for(lambda: user_ticks(stack)[-1] > datetime.now().astimezone() - timedelta(seconds=15),
             timeout_s=150, what="stack-tick to run again after beat restarted")
    ticks = [t for t in user_ticks(stack) if t >= stopped_at - timedelta(seconds=30)]
    gaps = [(a, b) for a, b in zip(ticks, ticks[1:]) if b - a != timedelta(seconds=10)]
    assert not gaps and ticks[0] < stopped_at < ticks[-1], f"instants lost around the beat restart: {gaps}"

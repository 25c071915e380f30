"""Real `celery -A tasks ...` processes against the session's real Redis."""
from __future__ import annotations

import subprocess
import sys
import uuid

import kombu
import pytest

from monitoring.heartbeats import last_heartbeat
from tests.servers import pid_alive, wait_until

pytestmark = pytest.mark.process
START_TIMEOUT_S = 60  # a cold worker import on a busy 2-core machine


def _wait_worker_ready(proc, timeout_s: float = START_TIMEOUT_S) -> None:
    wait_until(lambda: proc.poll() is not None or b"ready." in proc.log_path.read_bytes(),
               timeout_s=timeout_s, what="the worker to be ready")
    assert proc.poll() is None, proc.log_path.read_text()


def test_worker_subprocess_executes_a_task_sent_with_celery_call(processes, redis_client):
    worker = processes.celery("worker", "--loglevel=INFO", "-Q", "default", "-c", "1", "-P", "solo", "-n", "call-test@%h",
                              name="worker")
    _wait_worker_ready(worker)
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", "call", "beatkeeper.heartbeat"],
                         capture_output=True, text=True, timeout=60, check=True)
    task_id = out.stdout.strip()
    run = wait_until(lambda: last_heartbeat(redis_client), timeout_s=30, what="the heartbeat run")
    assert run.task_id == task_id
    assert run.worker.startswith("call-test@")


def test_a_pickled_message_is_refused_not_executed(processes, redis_client, redis_url):
    worker = processes.celery("worker", "--loglevel=INFO", "-Q", "default", "-c", "1", "-P", "solo", name="worker")
    _wait_worker_ready(worker)
    pickled_id = str(uuid.uuid4())
    with kombu.Connection(redis_url) as conn:
        producer = conn.Producer(serializer="pickle")
        producer.publish([[], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}],
                         routing_key="default", exchange="", declare=[kombu.Queue("default")],
                         headers={"lang": "py", "task": "beatkeeper.heartbeat", "id": pickled_id,
                                  "root_id": pickled_id, "parent_id": None, "group": None})
    wait_until(lambda: b"untrusted content" in worker.log_path.read_bytes(), timeout_s=30,
               what="the worker to refuse the pickled message")
    assert redis_client.llen("default") == 0  # consumed and dropped, not left to retry
    assert last_heartbeat(redis_client) is None  # never executed
    # the worker is still healthy and runs JSON messages
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", "call", "beatkeeper.heartbeat"],
                         capture_output=True, text=True, timeout=60, check=True)
    run = wait_until(lambda: last_heartbeat(redis_client), timeout_s=30, what="the JSON heartbeat")
    assert run.task_id == out.stdout.strip() != pickled_id


def test_processes_and_their_pool_children_are_stopped_by_pid(processes, tmp_path):
    from tests.conftest import Processes

    own = Processes(tmp_path)
    worker = own.celery("worker", "--loglevel=INFO", "-Q", "default", "-c", "2", "-P", "prefork", name="prefork")
    _wait_worker_ready(worker)
    children = wait_until(lambda: _children(worker.pid), timeout_s=30, what="pool children")
    own.stop_all()
    assert worker.poll() is not None
    assert not [pid for pid in children if pid_alive(pid)]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


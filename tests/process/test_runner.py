"""The README's run command, as a new user would use it: `make run` -> `python -m tasks.cli.runner`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import redis

from monitoring.heartbeats import last_heartbeat
from tests.servers import free_port, http_status, pid_alive, wait_until

pytestmark = pytest.mark.process
UP_TIMEOUT_S = 90  # five Python processes importing Celery on 2 cores


def test_runner_brings_up_redis_workers_beat_and_flower_and_ctrl_c_stops_them_all(processes, tmp_path):
    redis_port, flower_port, monitor_port = free_port(), free_port(), free_port()
    local_url = f"redis://127.0.0.1:{redis_port}/0"
    runner = processes.start([sys.executable, "-m", "tasks.cli.runner"], name="runner", env={
        "REDIS_URL": None, "BEATKEEPER_LOCAL_REDIS_PORT": str(redis_port), "FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": "ops:s3cret", "BEATKEEPER_DATA_DIR": str(tmp_path / "data"),
        "BEATKEEPER_WORKER_CONCURRENCY": "1", "BEATKEEPER_MONITOR_PORT": str(monitor_port)})
    log = lambda: runner.log_path.read_text(errors="replace")  # noqa: E731

    wait_until(lambda: "started redis-server" in log() or runner.poll() is not None, timeout_s=30,
               what="the runner to start redis-server")
    assert runner.poll() is None, log()
    wait_until(lambda: (log().count("ready.") >= 2 and "Acquired lock" in log()) or "stopped (rc=" in log(),
               timeout_s=UP_TIMEOUT_S, what="both workers ready and beat holding its lock")
    assert "stopped (rc=" not in log(), log()  # no process died on the way up
    assert "worker-singleton" in log() and "beat" in log()
    client = redis.Redis.from_url(local_url, decode_responses=True)
    assert client.exists("redbeat::lock")

    url = f"http://127.0.0.1:{flower_port}/"
    status = wait_until(lambda: http_status(url, None), timeout_s=UP_TIMEOUT_S, what="Flower answering")
    assert status == 401  # behind basic auth
    assert http_status(url, "ops:s3cret") == 200

    health = f"http://127.0.0.1:{monitor_port}/healthz"
    assert wait_until(lambda: http_status(health, None), timeout_s=UP_TIMEOUT_S, what="the monitor") == 200
    metrics = f"http://127.0.0.1:{monitor_port}/metrics"  # behind the same credentials as Flower
    assert http_status(metrics, None) == 401 and http_status(metrics, "ops:s3cret") == 200

    out = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", "call", "beatkeeper.heartbeat"],
                         env={**os.environ, "REDIS_URL": local_url}, capture_output=True, text=True,
                         timeout=60, check=True)
    run = wait_until(lambda: last_heartbeat(client), timeout_s=30, what="the hand-sent heartbeat")
    assert run.task_id == out.stdout.strip()

    descendants = _descendants(runner.pid)
    assert len(descendants) >= 6  # redis, 2 workers (+ pool children), beat, flower, monitor
    os.killpg(runner.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    runner.wait(timeout=60)
    wait_until(lambda: not [p for p in descendants if pid_alive(p)], timeout_s=30, what="every process to stop")
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_runner_says_in_one_line_how_to_install_redis_when_it_cannot(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(PATH=str(tmp_path), BEATKEEPER_LOCAL_REDIS_PORT=str(free_port()),
               BEATKEEPER_DATA_DIR=str(tmp_path / "data"))
    # PATH holds neither redis-server nor apt-get, so even as root it cannot install it
    out = subprocess.run([sys.executable, "-m", "tasks.cli.runner"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "beatkeeper: redis-server is not installed: run `sudo apt-get install redis-server` "
        "(or set REDIS_URL to a Redis you already run)"]




def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


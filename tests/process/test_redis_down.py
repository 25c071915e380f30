"""Beat, a worker, the monitor and Flower started while Redis is down: one log line per retry
(naming REDIS_URL, with backoff), no traceback, and working within one retry interval of
Redis coming up on the same port. ``make run`` (python -m tasks.cli.runner) with Redis down, a
misspelt task module or empty Flower credentials: one line, non-zero exit, within 10 s."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import redis

from monitoring.heartbeats import HEARTBEATS_KEY
from tests.servers import RedisServer, free_port, http_status, wait_until

pytestmark = pytest.mark.process
START_S = 90  # a Celery process importing the app on 2 shared cores
RETRY_LINE = re.compile(r"REDIS_URL=redis://[^ ]*127\.0\.0\.1:(\d+)/0")


def _log(proc) -> str:
    return proc.log_path.read_text(errors="replace")


def _retry_lines(text: str, port: int) -> list[str]:
    return [line for line in text.splitlines() if f"127.0.0.1:{port}" in line and "refused" in line]


def _assert_one_line_per_attempt(text: str, port: int, *, at_least: int) -> None:
    assert "Traceback" not in text, text
    lines = _retry_lines(text, port)
    assert len(lines) >= at_least, text
    for line in lines:  # each attempt is one whole line: what failed, where (the setting), and when again
        assert RETRY_LINE.search(line) and re.search(r"[Tt]rying again in \d", line), line
    assert not re.search(r"^\s*Trying again", text, re.MULTILINE)  # no continuation lines




def _listening_on(port: int) -> set[str]:
    """The local addresses listening on ``port`` (ss's fourth column)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines()}


@pytest.fixture
def down_redis(tmp_path):
    """A port where Redis is not yet running; ``.start()`` brings it up there."""
    server = RedisServer(tmp_path / "late-redis", port=free_port())
    yield server
    server.kill()


def _come_up(server: RedisServer, proc, *, retries_before: int = 2) -> float:
    wait_until(lambda: len(_retry_lines(_log(proc), server.port)) >= retries_before or proc.poll() is not None,
               timeout_s=START_S, what="retries while Redis is down")
    assert proc.poll() is None, _log(proc)
    server.start()
    return time.monotonic()


def test_beat_waits_for_redis_one_line_per_retry_then_takes_the_lock(processes, down_redis, tmp_path):
    beat = processes.celery("beat", "--loglevel=INFO", "-s", str(tmp_path / "beat-schedule"), name="beat",
                            env={"REDIS_URL": down_redis.url})
    up_at = _come_up(down_redis, beat)
    client = redis.Redis.from_url(down_redis.url)
    wait_until(lambda: client.exists("redbeat::lock"), timeout_s=5 + 15, what="beat taking its lock")
    took_s = time.monotonic() - up_at
    text = _log(beat)
    _assert_one_line_per_attempt(text, down_redis.port, at_least=2)
    intervals = [int(s) for s in re.findall(r"trying again in (\d+) s", text)]
    assert intervals[:2] == [1, 2] and intervals == sorted(intervals) and max(intervals) <= 5  # backoff, capped
    assert took_s < 5 + 15, took_s  # the retry interval, plus beat's start-up on a loaded machine


def test_worker_retries_one_line_per_attempt_then_executes_tasks(processes, down_redis):
    worker = processes.celery("worker", "-Q", "default", "-c", "1", "--loglevel=INFO", "-n", "late@%h",
                              name="worker", env={"REDIS_URL": down_redis.url})
    _come_up(down_redis, worker)
    wait_until(lambda: "ready." in _log(worker), timeout_s=6 + 20, what="the worker ready once Redis is up")
    _assert_one_line_per_attempt(_log(worker), down_redis.port, at_least=2)
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", "call", "beatkeeper.heartbeat"],
                         env={**os.environ, "REDIS_URL": down_redis.url}, capture_output=True, text=True,
                         timeout=60, check=True)
    task_id = out.stdout.strip()
    wait_until(lambda: f"{task_id}] succeeded" in _log(worker), timeout_s=30, what="the task executed")


def test_monitor_serves_on_127_0_0_1_while_redis_is_down_then_leads(processes, down_redis):
    port = free_port()
    monitor = processes.start([sys.executable, "-m", "tasks.cli", "monitor", "--port", str(port), "--interval", "1"],
                              name="monitor", env={"REDIS_URL": down_redis.url, "BEATKEEPER_MONITOR_HOST": None})
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/healthz") == 200, timeout_s=START_S,
               what="the monitor's /healthz while Redis is down")
    assert "monitor on http://127.0.0.1:" in _log(monitor)
    up_at = _come_up(down_redis, monitor)
    client = redis.Redis.from_url(down_redis.url)
    wait_until(lambda: client.zscore(HEARTBEATS_KEY, "monitor"), timeout_s=1 + 10, what="the monitor evaluating")
    assert time.monotonic() - up_at < 1 + 10
    _assert_one_line_per_attempt(_log(monitor), down_redis.port, at_least=2)
    assert "cannot renew the lead" not in _log(monitor)  # one line per attempt, not two


def test_flower_as_the_procfile_starts_it_waits_for_redis_then_serves_127_0_0_1_behind_auth(processes, down_redis):
    from tasks.cli.runner import procfile_commands

    port = free_port()
    flower = processes.start(procfile_commands()["flower"].split(), name="flower", env={
        "REDIS_URL": down_redis.url, "FLOWER_BASIC_AUTH": "ops:s3cret", "FLOWER_PORT": str(port),
        "FLOWER_ADDRESS": None, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"})
    _come_up(down_redis, flower)
    url = f"http://127.0.0.1:{port}/"
    assert wait_until(lambda: http_status(url), timeout_s=START_S, what="Flower answering") == 401
    assert http_status(url, "ops:s3cret") == 200
    assert http_status(url, "ops:") == 401
    _assert_one_line_per_attempt(_log(flower), down_redis.port, at_least=2)
    assert _listening_on(port) == {f"127.0.0.1:{port}"}


def test_monitor_as_the_procfile_starts_it_listens_on_127_0_0_1_only_behind_credentials(processes):
    from tasks.cli.runner import procfile_commands

    port = free_port()
    processes.start(procfile_commands()["monitor"].split(), name="monitor", env={
        "BEATKEEPER_MONITOR_PORT": str(port), "BEATKEEPER_MONITOR_HOST": None,
        "BEATKEEPER_MONITOR_BASIC_AUTH": "ops:s3cret",  # what make run and compose set
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"})
    base = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: http_status(f"{base}/healthz"), timeout_s=START_S, what="the monitor") == 200
    assert _listening_on(port) == {f"127.0.0.1:{port}"}
    assert http_status(f"{base}/readyz") in (200, 503)  # a probe: no credentials to send
    for path in ("/metrics", "/", "/overview.json", "/platform"):
        assert http_status(f"{base}{path}") == 401, path
        assert http_status(f"{base}{path}", "ops:wrong") == 401, path
    assert http_status(f"{base}/metrics", "ops:s3cret") == 200


def test_monitor_refuses_empty_credentials_in_one_line():
    out = subprocess.run([sys.executable, "-m", "tasks.cli", "monitor", "--port", "0"],
                         env={**os.environ, "BEATKEEPER_MONITOR_BASIC_AUTH": "ops:"}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["beatkeeper: BEATKEEPER_MONITOR_BASIC_AUTH: the entry for user ops has an "
                                       "empty user or password: set user:password with both non-empty"]


@pytest.mark.parametrize("setting, expected", [
    ({"REDIS_URL": "redis://:s3cret@127.0.0.1:{closed}/0"},
     "beatkeeper: Redis unreachable at REDIS_URL=redis://:**@127.0.0.1:{closed}/0: Error 111 connecting to "
     "127.0.0.1:{closed}. Connection refused."),
    ({"BEATKEEPER_TASK_MODULES": "myapp.jbos"},
     "beatkeeper: BEATKEEPER_TASK_MODULES='myapp.jbos': cannot import it (ModuleNotFoundError: No module named "
     "'myapp')"),
    ({"FLOWER_BASIC_AUTH": "admin:"},
     "beatkeeper: FLOWER_BASIC_AUTH: the entry for user admin has an empty user or password: set user:password "
     "with both non-empty"),
    ({"DATABASE_URL": "postgresql+psycopg2://beatkeeper:s3cret@127.0.0.1:{closed}/beatkeeper"},
     "beatkeeper: history database unusable at DATABASE_URL=postgresql+psycopg2://beatkeeper:***@127.0.0.1:{closed}"
     "/beatkeeper: "),
], ids=["redis-down", "task-module", "flower-empty-password", "database-down"])
def test_make_run_refuses_in_one_line_within_10_s(setting, expected, tmp_path):
    closed = free_port()
    env = {**os.environ, "BEATKEEPER_DATA_DIR": str(tmp_path / "data"), "BEATKEEPER_LOCAL_REDIS_PORT": str(free_port()),
           **{k: v.format(closed=closed) for k, v in setting.items()}}
    if "DATABASE_URL" in setting:
        env.pop("REDIS_URL")  # the runner starts its own Redis, then meets the database
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "tasks.cli.runner"], env=env, capture_output=True, text=True, timeout=60)
    took_s = time.monotonic() - started
    assert out.returncode == 1, out
    assert "Traceback" not in out.stdout + out.stderr and "s3cret" not in out.stdout + out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith(expected.format(closed=closed)), line
    assert took_s < 10, took_s


@pytest.mark.parametrize("program", ["worker", "beat"])
def test_worker_and_beat_refuse_a_misspelt_task_module_in_one_line_naming_the_setting(program):
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", program],
                         env={**os.environ, "BEATKEEPER_TASK_MODULES": "tasks.builtin,myapp.jbos"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["beatkeeper: BEATKEEPER_TASK_MODULES='myapp.jbos': cannot import it "
                                       "(ModuleNotFoundError: No module named 'myapp')"]
    assert "Traceback" not in out.stdout


def test_monitor_metrics_with_redis_down_answer_503_on_127_0_0_1_without_a_traceback(processes, down_redis):
    port = free_port()
    server = processes.start([sys.executable, "-m", "tasks.cli", "monitor", "--port", str(port)],
                             name="metrics", env={"REDIS_URL": down_redis.url, "BEATKEEPER_MONITOR_HOST": None,
                                                  "BEATKEEPER_MONITOR_METRICS_OPEN": "1"})
    url = f"http://127.0.0.1:{port}/metrics"
    assert wait_until(lambda: http_status(url), timeout_s=START_S, what="the metrics server") == 503
    assert _listening_on(port) == {f"127.0.0.1:{port}"}
    down_redis.start()
    assert wait_until(lambda: http_status(url) == 200, timeout_s=10, what="metrics once Redis is up")
    assert server.poll() is None and "Traceback" not in _log(server)

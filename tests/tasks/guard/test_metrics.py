"""Metrics across processes: a known sequence of runs on two worker processes, scraped over real
HTTP from the monitor (``beatkeeper monitor``, a separate process), shows the exact expected counts."""
from __future__ import annotations

import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tasks import headers
from tasks.guard.pause import PauseStore
from tests.monitoring.databases import sqlite_url  # noqa: F401
from tests.servers import free_port, wait_until
from tests.tasks import history_tasks as ht
from tests.run_states import run_state

pytestmark = pytest.mark.process
START_TIMEOUT_S = 60  # a cold worker import on a busy 2-core machine
TASKS = "tests.tasks.history_tasks"


def start_worker(processes, name: str, database_url: str):
    proc = processes.celery("worker", "-n", f"{name}@%h", "-c", "1", "-Q", "default", "--without-gossip",
                            "--without-mingle", "--without-heartbeat", "--loglevel", "INFO", name=name,
                            env={"BEATKEEPER_TASK_MODULES": TASKS, "DATABASE_URL": database_url})
    return proc


def wait_ready(proc) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early:\n{Path(proc.log_path).read_text()[-3000:]}")
        return b" ready." in Path(proc.log_path).read_bytes()

    wait_until(ready, timeout_s=START_TIMEOUT_S, what="a worker to be ready")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def runs(entry: str, task: str, status: str) -> tuple[str, tuple]:
    return ("beatkeeper_schedule_runs_total", (("entry", entry), ("name", task), ("status", status)))


def test_counts_from_two_worker_processes_are_exact_over_http(processes, redis_client, sqlite_url):
    workers = [start_worker(processes, f"metrics{n}", sqlite_url) for n in (1, 2)]
    port = free_port()
    server = processes.start([sys.executable, "-m", "tasks.cli", "monitor", "--host", "127.0.0.1",
                              "--port", str(port)], name="monitor",
                             env={"DATABASE_URL": sqlite_url, "BEATKEEPER_MONITOR_METRICS_OPEN": "1"})
    for worker in workers:
        wait_ready(worker)
    wait_until(lambda: _answers(port) or server.poll() is not None, timeout_s=30, what="the metrics server")
    started_at = time.time()

    fire_at = datetime.now(timezone.utc)
    # Six scheduled instants of one entry (one instant runs once: tasks.guard.identity).
    instants = [fire_at - timedelta(seconds=n) for n in range(6)]
    oks = [ht.ok.apply_async(("m", 0.4), headers=headers.dispatch_headers("metrics-entry", at)) for at in instants]
    failures = [ht.fail.delay("m") for _ in range(2)]
    PauseStore(redis_client).pause("paused-entry", now=time.time())
    paused = ht.ok.apply_async(("m",), headers=headers.dispatch_headers("paused-entry", fire_at))
    budget = [ht.small_budget.delay("m") for _ in range(3)]
    redis_client.set(ht.block_key("mo"), 1, ex=60)
    holder = ht.blocker.delay("mo")
    wait_until(lambda: redis_client.get("hist:mo:entered"), timeout_s=20, what="the blocker to start")
    overlapped = ht.blocker.delay("mo")
    wait_until(lambda: run_state(overlapped) == "SKIPPED_OVERLAP", timeout_s=20, what="the overlapping run")
    redis_client.delete(ht.block_key("mo"))
    every = [*oks, *failures, paused, *budget, holder, overlapped]
    wait_until(lambda: all(r.state not in ("PENDING", "STARTED") for r in every), timeout_s=60, what="all runs")
    assert len({r.result for r in oks}) == 2  # both worker processes ran some

    got = scrape(port)
    ok, fail, blocker, small = (ht.ok.name, ht.fail.name, ht.blocker.name, ht.small_budget.name)
    counted = {k: v for k, v in got.items() if k[0] == "beatkeeper_schedule_runs_total"}
    assert counted == {
        runs("metrics-entry", ok, "success"): 6,
        runs("", fail, "failure"): 2,
        runs("paused-entry", ok, "skipped_paused"): 1,
        runs("", small, "success"): 2,
        runs("", small, "skipped_budget"): 1,
        runs("", blocker, "success"): 1,
        runs("", blocker, "skipped_overlap"): 1,
    }
    assert got[("beatkeeper_task_overlap_detected_total", (("entry", ""), ("name", blocker)))] == 1
    assert got[("beatkeeper_task_duration_seconds_count", (("name", ok),))] == 6
    assert got[("beatkeeper_task_duration_seconds_sum", (("name", ok),))] >= 6 * 0.4
    assert got[("beatkeeper_task_duration_seconds_bucket", (("le", "0.25"), ("name", ok)))] == 0
    assert got[("beatkeeper_schedule_lateness_seconds_count", (("entry", "metrics-entry"),))] == 6
    # The budget admits runs that were not paused: the paused one never counts.
    invocations = {k[1][0][1]: v for k, v in got.items() if k[0] == "beatkeeper_task_invocations_per_hour"}
    assert invocations == {ok: 6, fail: 2, small: 2, blocker: 2}
    last_success = got[("beatkeeper_schedule_last_success_timestamp", (("entry", "metrics-entry"),))]
    assert started_at < last_success <= time.time()


def _answers(port: int) -> bool:
    try:
        scrape(port)
        return True
    except OSError:
        return False

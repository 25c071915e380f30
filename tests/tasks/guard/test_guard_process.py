"""No overlap through real ``celery -A tasks worker`` subprocesses (the app's standard middlewares):
contention across pool processes, SIGKILL mid-run, redelivery, the singleton queue, time limits."""
from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone

import pytest

from monitoring.events import read_events
from tasks import headers
from tasks.guard.overlap import skipped_counts
from tests.run_states import run_state
from tests.servers import wait_until
from tests.tasks import guarded_tasks as gt
from tests.tasks.conftest import GUARDED_MODULES, lock_key_of, publish_entry, start_worker_process

pytestmark = pytest.mark.process


def scheduled(entry: str, task, **policy) -> dict:
    """Headers of a scheduled dispatch of ``task`` whose entry sets ``policy`` (published, as beat does)."""
    publish_entry(entry, task, **policy)
    return headers.dispatch_headers(entry, datetime.now(timezone.utc))


def test_four_pool_processes_hammering_a_skip_task_never_overlap(processes, redis_client, probe_for):
    start_worker_process(processes, "-P", "prefork", "-c", "4", "-Q", "default", name="contend")
    attempts = 400
    results = [gt.probe.delay("hot4") for _ in range(attempts)]
    probe = probe_for("hot4")

    def accounted():
        return probe.ran() + skipped_counts(redis_client).get(gt.probe.name, 0) == attempts

    wait_until(accounted, timeout_s=60, what=f"all {attempts} attempts to run or be skipped")
    assert probe.violations() == 0
    states = {run_state(r) for r in results}
    assert states <= {"SUCCESS", "SKIPPED_OVERLAP"}
    assert len({pid for r in results if r.state == "SUCCESS" for pid in [r.result]}) > 1  # several processes ran it


def test_sigkill_mid_run_frees_the_lock_within_ttl_and_the_killed_run_is_lost(processes, redis_client, probe_for):
    ttl_s = 2.0
    worker = start_worker_process(processes, "-P", "prefork", "-c", "1", "-Q", "default", name="crash")
    probe = probe_for("crash")
    probe.block()
    killed = gt.probe.apply_async(("crash",), {"record": True},
                                  headers=scheduled("crash-entry", gt.probe, lock_ttl_s=ttl_s))
    wait_until(lambda: probe.entered(), timeout_s=15, what="the locked run to start")
    key = lock_key_of(gt.probe, "crash")
    assert redis_client.exists(key)
    os.killpg(worker.pid, signal.SIGKILL)  # the whole worker: main process and pool child
    killed_at = time.monotonic()
    probe.forget_killed_run()
    wait_until(lambda: not redis_client.exists(key), timeout_s=ttl_s + 3, interval_s=0.02, what="the lock to free")
    assert time.monotonic() - killed_at <= ttl_s + 1
    probe.unblock()

    after = gt.probe.apply(args=("crash",), kwargs={"record": True})
    assert after.state == "SUCCESS" and probe.ran() == 1 and probe.violations() == 0
    [lost] = [e for e in read_events(redis_client, kind="run_lost") if e.data["task_id"] == killed.id]
    assert lost.subject == "crash-entry" and lost.data["detected_by"] == after.id
    assert killed.state == "STARTED"  # never success


def test_a_redelivered_message_never_runs_alongside_a_newer_run(processes, redis_client, probe_for):
    ttl_s = 1.5
    start_worker_process(processes, "-P", "prefork", "-c", "2", "-Q", "default", name="redeliver")
    probe = probe_for("redo")
    probe.block()
    first = gt.probe.apply_async(("redo",), {"record": True, "hold_s": 0.3},
                                 headers=scheduled("redo-entry", gt.probe, lock_ttl_s=ttl_s))
    [entered] = wait_until(lambda: probe.entered(), timeout_s=15, what="the first delivery to start")
    os.kill(entered["pid"], signal.SIGKILL)  # only the pool process: the worker requeues the message
    probe.forget_killed_run()
    probe.unblock()
    newer = []
    for _ in range(12):  # newer triggers keep arriving while the redelivery waits and runs
        newer.append(gt.probe.apply_async(("redo",), {"record": True, "hold_s": 0.3},
                                          headers=scheduled("redo-entry", gt.probe, lock_ttl_s=ttl_s)))
        time.sleep(0.25)
    assert first.get(timeout=20)
    wait_until(lambda: all(run_state(r) in ("SUCCESS", "SKIPPED_OVERLAP") for r in newer), timeout_s=20,
               what="every newer trigger to run or be skipped")
    first_deliveries = [e for e in probe.entered() if e["task_id"] == first.id]
    assert len(first_deliveries) == 2 and first_deliveries[0]["pid"] != first_deliveries[1]["pid"]
    assert probe.violations() == 0
    spans = sorted(probe.intervals().values())
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    assert [e.data["task_id"] for e in read_events(redis_client, kind="run_lost")] == [first.id]


def test_singleton_queue_runs_two_cli_triggers_one_after_the_other(processes, redis_client, probe_for):
    start_worker_process(processes, "-P", "prefork", "-c", "1", "-Q", "singleton", name="singleton")
    calls = [processes.celery("call", gt.serial_probe.name, "--args", '["single", 0.5]', name=f"call{i}",
                              env={"BEATKEEPER_TASK_MODULES": GUARDED_MODULES}) for i in range(2)]
    for call in calls:
        assert call.wait(timeout=30) == 0
    probe = probe_for("single")
    wait_until(lambda: probe.ran() == 2, timeout_s=20, what="both triggers to run")
    (first_in, first_out), (second_in, second_out) = sorted(probe.intervals().values())
    assert second_in >= first_out
    assert probe.violations() == 0 and skipped_counts(redis_client) == {}
    assert not redis_client.llen("default")  # routed by name, never through the default queue


def test_time_limit_kills_while_max_runtime_only_reports(processes, redis_client, probe_for):
    start_worker_process(processes, "-P", "prefork", "-c", "1", "-Q", "default", name="limits")
    result = gt.time_limited.delay("tl", 10.0)
    [event] = wait_until(lambda: read_events(redis_client, kind="long_run"), timeout_s=15, what="long_run")
    assert event.data["task_id"] == result.id and event.data["still_running"]
    wait_until(lambda: result.state == "FAILURE", timeout_s=15, what="the hard time limit")
    failed_at = time.monotonic()
    assert type(result.result).__name__ == "TimeLimitExceeded"
    key = lock_key_of(gt.time_limited, "tl", 10.0)
    wait_until(lambda: not redis_client.exists(key), timeout_s=5, interval_s=0.02, what="the lock to free")
    assert time.monotonic() - failed_at <= gt.time_limited.lock_ttl_s + 1
    assert probe_for("tl").ran() == 0

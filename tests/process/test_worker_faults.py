"""A worker's pool process SIGKILLed mid-run, with real ``celery -A tasks worker`` processes: the
message comes back (``task_reject_on_worker_lost``) and run identity lets it execute again exactly
once; a task that kills its worker every time is dead-lettered after the redelivery cap."""
from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from monitoring.events import read_events
from tasks import headers
from tasks.guard.identity import DEFAULT_MAX_REDELIVERIES, ClaimState, claim_record, dead_letters, run_id_for
from tests.tasks.beat import ledger_tasks as lt
from tests.servers import wait_until
from tests.run_states import run_state

pytestmark = pytest.mark.process
LEDGER_MODULES = "tests.tasks.beat.ledger_tasks"
START_TIMEOUT_S = 60


def start_worker(processes, name: str, *args: str):
    proc = processes.celery("worker", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
                            "--without-heartbeat", "--loglevel", "INFO", "-P", "prefork", "-Q", "default", *args,
                            name=name, env={"BEATKEEPER_TASK_MODULES": LEDGER_MODULES})
    wait_until(lambda: _ready(proc), timeout_s=START_TIMEOUT_S, what=f"worker {name} ready")
    return proc


def _ready(proc) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"worker exited early:\n{Path(proc.log_path).read_text()[-3000:]}")
    return b" ready." in Path(proc.log_path).read_bytes()


def test_a_pool_process_killed_mid_run_runs_the_instant_again_exactly_once(processes, redis_client):
    start_worker(processes, "killed", "-c", "1")
    fire_at = datetime.now(timezone.utc).replace(microsecond=0)
    sent = headers.dispatch_headers("kill-entry", fire_at)
    redis_client.set(lt.BLOCK_PREFIX + "k", 1, ex=60)
    result = lt.side_effect.apply_async(("k",), headers=sent)
    [first] = wait_until(lambda: lt.entered(redis_client, "k"), timeout_s=30, what="the run to start")
    os.kill(first["pid"], signal.SIGKILL)  # only the pool process: the worker requeues the message
    duplicate = lt.side_effect.apply_async(("k",), headers=sent)  # a second dispatch of the same instant
    redis_client.delete(lt.BLOCK_PREFIX + "k")

    # Whichever comes first, the requeued message or the second dispatch, runs the instant; the other
    # is a duplicate.
    wait_until(lambda: {run_state(result), run_state(duplicate)} == {"SUCCESS", "SKIPPED_DUPLICATE"}, timeout_s=40,
               what="one delivery to succeed and the other to be skipped")
    starts = lt.entered(redis_client, "k")
    assert len(starts) == 2 and starts[0]["task_id"] == result.id  # the killed run, then one re-execution
    assert starts[1]["pid"] != first["pid"] and starts[1]["fence"] > starts[0]["fence"]
    assert lt.ledger(redis_client) == {f"kill-entry|{fire_at.isoformat()}": 1}  # the side effect, once
    record = claim_record(redis_client, run_id_for(entry="kill-entry", fire_at=fire_at, task_id=""))
    assert (record.state, record.deaths) == (ClaimState.SUCCEEDED, 1)
    assert not read_events(redis_client, kind="run_dead_lettered")


def test_a_task_that_kills_its_worker_every_time_is_dead_lettered_after_the_cap(processes, redis_client):
    worker = start_worker(processes, "suicidal", "-c", "1")
    fire_at = datetime.now(timezone.utc).replace(microsecond=0)
    started = time.monotonic()
    result = lt.kill_own_worker.apply_async(("d",), headers=headers.dispatch_headers("doomed-entry", fire_at))

    [event] = wait_until(lambda: read_events(redis_client, kind="run_dead_lettered"), timeout_s=60,
                         what="the run to be dead-lettered")
    wait_until(lambda: run_state(result) == "DEAD_LETTERED", timeout_s=10, what="the dead letter's state")
    starts = lt.entered(redis_client, "d")
    assert len(starts) == DEFAULT_MAX_REDELIVERIES + 1  # the first delivery and the capped redeliveries
    assert len({s["pid"] for s in starts}) == len(starts)  # each one killed its pool process
    assert (event.subject, event.data["task_id"], event.data["deaths"]) == (
        "doomed-entry", result.id, DEFAULT_MAX_REDELIVERIES + 1)
    [letter] = dead_letters(redis_client)
    assert (letter.task, letter.args, letter.entry) == (lt.kill_own_worker.name, ["d"], "doomed-entry")
    wait_until(lambda: redis_client.llen("default") == 0 and not redis_client.hlen("unacked"), timeout_s=10,
               what="the message to be acknowledged")
    assert worker.poll() is None  # the worker itself survived every death of its pool process
    print(f"dead-lettered after {time.monotonic() - started:.1f} s")

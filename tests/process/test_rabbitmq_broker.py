"""RabbitMQ as the broker, Redis as the state store (issue 17), with a real rabbitmq-server
(``tests.rabbitmq``: one private node per session), real beat, worker, monitor and CLI processes.

- Two beats with a forced lock loss execute every instant exactly once (the ledger of
  ``tests.tasks.beat.ledger_tasks``), and no dispatch is taken for lost: with RabbitMQ, publisher
  confirms stand where the Redis broker needs the delivery watch, so nothing is re-sent and no
  ``dispatch_lost`` is raised (before issue 17 the watch looked for the messages in the state
  Redis, found none and re-sent every dispatch up to 3 times).
- Queue depth in ``beatkeeper status`` and ``/metrics`` is the broker's own count.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from monitoring.broker_queues import BrokerQueues
from monitoring.events import read_events
from tasks import headers
from tasks.beat import delivery_watch
from tasks.beat.lock import LOCK_LOST_EXIT_CODE
from tests.tasks.beat import ledger_tasks as lt
from tests.process.test_beat_faults import (BEAT_LOCK_KEY, START_TIMEOUT_S, assert_each_instant_once_without_gaps,
                                            executed, instants_executed, platform_env, start_beat, start_worker,
                                            ticking)
from tests.rabbitmq import rabbitmq  # noqa: F401  (the session's node, a pytest fixture)
from tests.conftest import ROOT
from tests.servers import free_port, stop_process_tree, wait_until

pytestmark = pytest.mark.process

ENTRIES = 25  # every second: 500 instants in 20 s, about what a loaded 2-core worker keeps up with
TARGET = 500


def broker_depth(url: str, queue: str) -> int:
    return BrokerQueues(lambda: Connection(url)).depths([queue])[queue]


def wait_drained(client, url: str, *, timeout_s: float = 60) -> None:
    """Until the broker's queue is empty and the ledger stopped growing."""
    seen = {"size": -1, "since": time.monotonic()}

    def settled() -> bool:
        if broker_depth(url, "default"):
            seen["size"] = -1
            return False
        size = instants_executed(client)
        if size != seen["size"]:
            seen.update(size=size, since=time.monotonic())
            return False
        return time.monotonic() - seen["since"] >= 1.5

    wait_until(settled, timeout_s=timeout_s, interval_s=0.2, what="the queue to drain")


def test_two_beats_on_rabbitmq_execute_every_instant_once_with_no_dispatch_taken_for_lost(
        processes, redis_client, rabbitmq, tmp_path):
    started = time.monotonic()
    schedule = ticking(ENTRIES, catchup="all", catchup_max=100)
    env = {**platform_env(tmp_path, schedule), "CELERY_BROKER_URL": rabbitmq.url}
    worker = start_worker(processes, env, "ledger", concurrency=4)
    leader = start_beat(processes, env, "beat-a")
    wait_until(lambda: instants_executed(redis_client), timeout_s=START_TIMEOUT_S, what="the leader's first run")
    standby = start_beat(processes, env, "beat-b")
    wait_until(lambda: instants_executed(redis_client) >= TARGET // 2, timeout_s=120, what="half the instants")

    # The forced lock loss of test_beat_faults: another owner's token until the leader exited.
    redis_client.set(BEAT_LOCK_KEY, "intruder", px=20_000)
    lost_at = datetime.now(timezone.utc)
    assert leader.wait(timeout=15) == LOCK_LOST_EXIT_CODE
    assert redis_client.delete(BEAT_LOCK_KEY) == 1
    # What a second beat firing the same instants would send, through RabbitMQ: duplicates the
    # run identity skips.
    resent = sorted(lt.ledger(redis_client))[::10]
    with Connection(rabbitmq.url) as connection:
        for field in resent:
            entry, _, fire_at = field.partition("|")
            lt.record.apply_async(headers=headers.dispatch_headers(entry, datetime.fromisoformat(fire_at)),
                                  connection=connection, queue="default")
    wait_until(lambda: instants_executed(redis_client) >= TARGET + len(schedule), timeout_s=120,
               what=f"{TARGET} instants")
    assert standby.poll() is None
    stop_process_tree(standby)
    wait_drained(redis_client, rabbitmq.url)
    stop_process_tree(worker)

    by_entry = executed(redis_client)
    assert_each_instant_once_without_gaps(by_entry, schedule)
    assert all(max(runs) > lost_at + timedelta(seconds=2) for runs in by_entry.values())
    beat_logs = Path(leader.log_path).read_text() + Path(standby.log_path).read_text()
    lost_events = read_events(redis_client, kind="dispatch_lost")
    resent_events = read_events(redis_client, kind="dispatch_resent")
    instants = sum(len(runs) for runs in by_entry.values())
    print(f"rabbitmq broker: {instants} instants executed once, 0 doubled, 0 lost; {len(resent)} duplicates "
          f"sent and skipped; dispatch_lost {len(lost_events)}, dispatch_resent {len(resent_events)}; "
          f"wall {time.monotonic() - started:.0f} s (the session's node started before)")
    assert instants >= TARGET
    assert lost_events == [] and resent_events == []
    assert "never reached a worker" not in beat_logs
    assert redis_client.zcard(delivery_watch.PENDING_KEY) == 0  # nothing watched: confirms instead
    # the start-up finding: the default BEATKEEPER_MAX_LOCK_TTL (3600 s) outlasts RabbitMQ's default 30 min
    assert beat_logs.count("self-check rabbitmq-consumer-timeout: RabbitMQ consumer_timeout 1800 s") == 2


PARKED = "parked"  # a queue no worker consumes
PARKED_MESSAGES = 7


def test_queue_depth_in_status_and_metrics_is_the_brokers(processes, redis_client, rabbitmq, tmp_path):
    schedule = {"parked-entry": {"task": lt.record.name, "every": 3600, "queue": PARKED}}
    port = free_port()
    env = {**platform_env(tmp_path, schedule), "CELERY_BROKER_URL": rabbitmq.url,
           "BEATKEEPER_MONITOR_PORT": str(port), "BEATKEEPER_MONITOR_INTERVAL": "0.5",
           "BEATKEEPER_INSPECT_TIMEOUT": "0.3", "BEATKEEPER_MONITOR_METRICS_OPEN": "1",
           "BEATKEEPER_MONITOR_BASIC_AUTH": "ops:s3cret"}
    with Connection(rabbitmq.url) as connection:
        queue = Queue(PARKED, Exchange(PARKED, type="direct"), routing_key=PARKED)  # as Celery declares it
        queue(connection.default_channel).declare()
        queue(connection.default_channel).purge()
        for n in range(PARKED_MESSAGES):
            lt.record.apply_async(kwargs={"hold_s": 0}, connection=connection, queue=PARKED)
    expected = wait_until(lambda: rabbitmq.messages().get(PARKED) == PARKED_MESSAGES and PARKED_MESSAGES,
                          timeout_s=30, what="rabbitmqctl to count the messages")

    monitor = processes.start([sys.executable, "-m", "tasks.cli", "monitor"], name="monitor", env=env)  # boots meanwhile
    status = subprocess.run([sys.executable, "-m", "tasks.cli", "status", "--json", "--inspect-timeout", "0.3"],
                            cwd=ROOT, env={**_environ(), **env}, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    queues = json.loads(status.stdout)["queues"]
    assert queues[PARKED]["pending"] == expected
    assert queues["default"]["pending"] == broker_depth(rabbitmq.url, "default")

    line = f'beatkeeper_queue_messages{{queue="{PARKED}"}} {float(expected)}'
    body = wait_until(lambda: (text := _metrics(port)) and line in text and text, timeout_s=START_TIMEOUT_S,
                      interval_s=0.5, what=f"/metrics to say {line}")
    assert rabbitmq.messages().get(PARKED) == expected  # nothing consumed meanwhile: the same count
    assert monitor.poll() is None and "Traceback" not in Path(monitor.log_path).read_text()
    print(f"queue depth: rabbitmqctl {expected}, status {queues[PARKED]['pending']}, /metrics "
          f"{[x for x in body.splitlines() if x.startswith('beatkeeper_queue_messages')]}")


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def _metrics(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return reply.read().decode()
    except OSError:
        return None

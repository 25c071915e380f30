"""A run that finishes after the worker's consumer reconnected to Redis: its late ack goes to the
old, closed channel. With kombu's Redis transport that ack raised ``AttributeError`` ('NoneType'
object has no attribute 'hostname') and the worker stopped ("Unrecoverable error"); now the ack
is made on the new connection (the message leaves Redis' unacked set), the worker keeps running
and runs the next task (``tasks.worker_consumer``)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from tasks import headers
from tests.tasks.beat import ledger_tasks as lt
from tests.process.claim_gate import GATE_DIR_ENV
from tests.process.test_worker_faults import _ready
from tests.servers import RedisServer, wait_until

pytestmark = pytest.mark.process
CONNECTED = b"Connected to redis://"
RESETTLED = b"made on the new broker connection"
OUTAGE_S = 1.0


def test_a_run_finishing_after_the_consumer_reconnected_does_not_stop_the_worker(app, processes, tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True, extra_args=("--appendfsync", "always")).start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        gate = tmp_path / "gate-dir"
        gate.mkdir()
        (gate / "gate").touch()
        worker = processes.celery(
            "worker", "-n", "reack@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel",
            "INFO", "-P", "prefork", "-c", "2", "-Q", "default", name="reack",
            env={"REDIS_URL": server.url, "CELERY_RESULT_BACKEND": server.url, GATE_DIR_ENV: str(gate),
                 "BEATKEEPER_TASK_MODULES": "tests.tasks.beat.ledger_tasks,tests.process.claim_gate"})
        log = Path(worker.log_path)
        wait_until(lambda: _ready(worker), timeout_s=60, what="the worker to be ready")
        first_at = datetime.now(timezone.utc).replace(microsecond=0)
        with app.connection_for_write(server.url) as connection:
            held = lt.record.apply_async(headers=headers.dispatch_headers("reack-entry", first_at),
                                         connection=connection)
        wait_until(lambda: (gate / f"at-gate-{held.id}").exists(), timeout_s=30, what="the run to be held")

        # Redis dies while the run is held and the consumer waits in BRPOP for a second message
        # (two pool processes): closing that channel fails part-way (``tasks.worker_consumer``);
        # Redis is back on the same port before the consumer's first retry (2 s), which reconnects.
        server.kill()
        time.sleep(OUTAGE_S)
        server.start()
        assert client.hlen("unacked") == 1  # the held run's message, kept by the append-only file
        wait_until(lambda: log.read_bytes().count(CONNECTED) >= 2, timeout_s=30, what="the consumer to reconnect")
        (gate / "gate").unlink()  # the run finishes now, and acks on the old channel

        first = f"reack-entry|{first_at.isoformat()}"
        wait_until(lambda: lt.ledger(client).get(first), timeout_s=30, what="the held run to execute")
        # Acknowledged on the new connection: it no longer waits in the unacked set for the
        # visibility timeout (hours) to be delivered again.
        wait_until(lambda: worker.poll() is not None or not client.hlen("unacked"), timeout_s=30,
                   what="the held run's message to be acknowledged")
        assert worker.poll() is None, f"worker exited:\n{log.read_text()[-3000:]}"
        wait_until(lambda: RESETTLED in log.read_bytes(), timeout_s=10, what="the worker to say where it acked")

        next_at = first_at + timedelta(seconds=1)
        with app.connection_for_write(server.url) as connection:
            lt.record.apply_async(headers=headers.dispatch_headers("reack-entry", next_at), connection=connection)
        second = f"reack-entry|{next_at.isoformat()}"
        wait_until(lambda: lt.ledger(client).get(second) or worker.poll() is not None, timeout_s=30,
                   what="the next run to execute")
        assert worker.poll() is None, f"worker exited:\n{log.read_text()[-3000:]}"
        assert lt.ledger(client) == {first: 1, second: 1}
        wait_until(lambda: client.llen("default") == 0 and not client.hlen("unacked"), timeout_s=30,
                   what="the next run to be acknowledged")
        assert b"Unrecoverable error" not in log.read_bytes()
    finally:
        server.kill()

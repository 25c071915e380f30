"""A Redis fault exactly when a run claims its id, with a real prefork worker on a private Redis:
the run executes later exactly once (a ledger counts executions), never recorded as failed."""
from __future__ import annotations

import signal
import time
from datetime import datetime, timezone

import pytest
import redis

from tasks import headers
from tasks.guard.identity import ClaimState, claim_record, run_id_for
from tests.tasks.beat import ledger_tasks as lt
from tests.process.claim_gate import GATE_DIR_ENV
from tests.process.test_worker_faults import _ready
from tests.servers import RedisServer, wait_until

pytestmark = pytest.mark.process
OUTAGE_S = 6.0  # longer than redis-py's own per-command retries (10 tries, at most 1 s apart)
PAUSE_S = 3.0


class ServerKilled:
    """SIGKILL: every connection refused until it is back, restarted from its append-only file."""

    def start(self, server: RedisServer, client) -> None:
        server.kill()

    def end(self, server: RedisServer, client) -> None:
        time.sleep(OUTAGE_S)
        server.start()


class ServerStopped:
    """SIGSTOP for PAUSE_S: connections stay open, nothing answers."""

    def start(self, server: RedisServer, client) -> None:
        server.proc.send_signal(signal.SIGSTOP)

    def end(self, server: RedisServer, client) -> None:
        time.sleep(PAUSE_S)
        server.proc.send_signal(signal.SIGCONT)


class ConnectionsKilled:
    """CLIENT KILL of every client connection (the worker's consumer and its pool process's)."""

    def start(self, server: RedisServer, client) -> None:
        client.client_kill_filter(_type="normal", skipme=True)

    def end(self, server: RedisServer, client) -> None:
        pass


@pytest.mark.parametrize("fault", [ServerKilled(), ServerStopped(), ConnectionsKilled()],
                         ids=["server_killed_6s", "server_stopped_3s", "connections_killed"])
def test_a_redis_fault_at_the_claim_runs_the_instant_later_exactly_once(app, processes, tmp_path, fault):
    server = RedisServer(tmp_path / "redis", appendonly=True, extra_args=("--appendfsync", "always")).start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        gate = tmp_path / "gate-dir"
        gate.mkdir()
        (gate / "gate").touch()
        worker = processes.celery(
            "worker", "-n", "blip@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel",
            "INFO", "-P", "prefork", "-c", "1", "-Q", "default", name="blip",
            env={"REDIS_URL": server.url, "CELERY_RESULT_BACKEND": server.url, GATE_DIR_ENV: str(gate),
                 "BEATKEEPER_TASK_MODULES": "tests.tasks.beat.ledger_tasks,tests.process.claim_gate"})
        wait_until(lambda: _ready(worker), timeout_s=60, what="the worker to be ready")
        fire_at = datetime.now(timezone.utc).replace(microsecond=0)
        with app.connection_for_write(server.url) as connection:
            # A hand run first: the pool process reads the published policies (cached for seconds),
            # so the scheduled run's first Redis call after the gate is most likely its claim.
            warm_up = lt.record.apply_async(connection=connection)
            wait_until(lambda: _ledger(client).get(f"hand|{warm_up.id}"), timeout_s=30, what="the hand run")
            sent = lt.record.apply_async(headers=headers.dispatch_headers("blip-entry", fire_at),
                                         connection=connection)
        wait_until(lambda: (gate / f"at-gate-{sent.id}").exists(), timeout_s=30, what="the run at the claim")

        fault.start(server, client)
        (gate / "gate").unlink()  # the run goes on to claim its id while Redis is broken
        fault.end(server, client)

        field = f"blip-entry|{fire_at.isoformat()}"
        wait_until(lambda: _ledger(client).get(field), timeout_s=90, interval_s=0.2, what="the run to execute")
        wait_until(lambda: _settled(client), timeout_s=60, interval_s=0.2, what="the message to be acknowledged")
        assert _ledger(client) == {field: 1, f"hand|{warm_up.id}": 1}  # exactly once
        record = claim_record(client, run_id_for(entry="blip-entry", fire_at=fire_at, task_id=""))
        assert record.state is ClaimState.SUCCEEDED
        assert worker.poll() is None
    finally:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)
        server.kill()


def _ledger(client) -> dict[str, int]:
    try:
        return lt.ledger(client)
    except redis.RedisError:
        return {}


def _settled(client) -> bool:
    try:
        return client.llen("default") == 0 and not client.hlen("unacked")
    except redis.RedisError:
        return False

"""beatkeeper.heartbeat on a real worker against real Redis."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from monitoring.heartbeats import HEARTBEATS_KEY, last_heartbeat
from tasks import headers
from tasks.builtin import heartbeat


def test_worker_runs_heartbeat_and_it_is_readable_from_redis(worker, redis_client):
    before = time.time()
    result = heartbeat.apply_async()
    run = _wait_for_heartbeat(redis_client)
    assert run.task_id == result.id
    assert before <= run.executed_at <= time.time()
    assert run.scheduled_at is None  # sent by hand: no fire instant
    assert run.entry == ""
    scores = dict(redis_client.zrange(HEARTBEATS_KEY, 0, -1, withscores=True))
    assert scores["worker"] == run.executed_at
    assert "beat" not in scores


def test_heartbeat_records_the_fire_instant_beat_gave_it(worker, redis_client):
    fire_at = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
    heartbeat.apply_async(headers=headers.dispatch_headers("beatkeeper-heartbeat", fire_at))
    run = _wait_for_heartbeat(redis_client)
    assert run.entry == "beatkeeper-heartbeat"
    assert run.scheduled_at == fire_at.timestamp()
    assert dict(redis_client.zrange(HEARTBEATS_KEY, 0, -1, withscores=True))["beat"] == fire_at.timestamp()


def _wait_for_heartbeat(client, timeout_s: float = 20):
    from tests.servers import wait_until

    return wait_until(lambda: last_heartbeat(client), timeout_s=timeout_s, what="a heartbeat in Redis")

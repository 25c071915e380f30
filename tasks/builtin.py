"""Tasks the platform itself runs."""
from __future__ import annotations

import time

from monitoring.heartbeats import HeartbeatRun, record_heartbeat
from tasks import headers
from tasks.application import app
from tasks.redis_client import app_redis


@app.task(name="beatkeeper.heartbeat", bind=True, ignore_result=True)
def heartbeat(self) -> dict:
    """Prove the beat -> broker -> worker path is alive: record when beat scheduled it and when it ran."""
    fire_at = headers.fire_at_of(self.request)
    run = HeartbeatRun(
        executed_at=time.time(),
        worker=self.request.hostname or "unknown",
        task_id=self.request.id or "",
        scheduled_at=fire_at.timestamp() if fire_at else None,
        entry=headers.entry_of(self.request),
    )
    record_heartbeat(app_redis(self.app), run)
    return {"executed_at": run.executed_at, "scheduled_at": run.scheduled_at}

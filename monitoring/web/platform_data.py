"""The platform page's and the alerts page's data: heartbeats, beat's lock, workers and queues
(the monitor's latest evaluation: no worker is asked per page view), locks held, dead letters,
pipeline runs with each step's status; firing and recently resolved alerts."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import redis

from monitoring.alerts import AlertStore, iso_utc
from monitoring.heartbeats import heartbeat_ages_s
from monitoring.status import held_locks
from monitoring.web.alert_log import recent_resolved
from monitoring.web.entry_data import _jsonable, flower_link
from monitoring.web.sources import DashboardSources

PIPELINE_RUNS = 20
DEAD_LETTERS = 100


def platform_data(sources: DashboardSources) -> dict[str, Any]:
    now = sources.clock()
    client, keys = sources.client, sources.keys
    data: dict[str, Any] = {"at": iso_utc(now), "problems": [], "heartbeat_ages_s": {}, "beat_lock_ttl_s": None,
                            "queues": sources.queues(), "locks": [], "dead_letters": [], "pipeline_runs": []}
    try:
        data["heartbeat_ages_s"] = heartbeat_ages_s(client, now=now)
        ttl_ms = client.pttl(keys.redbeat_lock_key)
        data["beat_lock_ttl_s"] = ttl_ms / 1000 if ttl_ms is not None and ttl_ms >= 0 else None
        data["locks"] = held_locks(client, keys)
        data["dead_letters"] = [json.loads(raw) for raw in client.lrange(sources.dead_letters_key, 0, DEAD_LETTERS - 1)]
    except redis.RedisError as exc:
        data["problems"].append(f"Redis is unreachable: {exc}")
    for letter in data["dead_letters"]:
        letter["flower_url"] = flower_link(sources.flower_url, letter.get("task_id", ""))
    if sources.pipelines is not None:
        try:
            data["pipeline_runs"] = _pipeline_runs(sources, datetime.fromtimestamp(now, timezone.utc))
        except Exception as exc:
            data["problems"].append(f"pipeline runs unavailable: {type(exc).__name__}")
    return _jsonable(data)


def _pipeline_runs(sources: DashboardSources, now: datetime) -> list[dict[str, Any]]:
    runs = []
    for run in sources.pipelines.runs(limit=PIPELINE_RUNS):
        records = sources.pipelines.step_records(run.run_id)
        steps = [{"step": step, "status": records[step].status.value if step in records else "pending",
                  "attempts": records[step].attempts if step in records else 0,
                  "error": records[step].error if step in records else None} for step in run.steps]
        runs.append({"run_id": run.run_id, "pipeline": run.pipeline, "state": run.state(now), "entry": run.entry,
                     "created_at": run.created_at, "updated_at": run.updated_at, "error": run.error,
                     "failed_step": run.failed_step, "resumes": run.resumes, "steps": steps})
    return runs


def alerts_data(sources: DashboardSources) -> dict[str, Any]:
    data: dict[str, Any] = {"at": iso_utc(sources.clock()), "firing": [], "resolved": [], "problems": []}
    try:
        data["firing"] = sorted(({**a.alert.to_dict(), "since": a.since} for a in AlertStore(sources.client)
                                 .active().values()), key=lambda a: (a["severity"], a["rule"], a["subject"]))
        data["resolved"] = recent_resolved(sources.client)
    except redis.RedisError as exc:
        data["problems"].append(f"Redis is unreachable: {exc}")
    return data

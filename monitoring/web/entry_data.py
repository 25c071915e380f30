"""An entry page's data: its status row (as the overview's), one page of its history,
its policy and its DST table for the year ahead (``schedules.plan``, as ``beatkeeper plan``)."""
from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any
from urllib.parse import quote

from monitoring.history import RUN_STATUSES
from monitoring.web.history_reads import entry_history
from monitoring.web.overview_data import overview_data
from monitoring.web.sources import DashboardSources
from schedules.entry import EntrySpec
from schedules.plan import build_plan

PAGE_SIZE = 50


def entry_data(sources: DashboardSources, name: str, *, statuses: list[str] | None = None, page: int = 1,
               page_size: int = PAGE_SIZE) -> dict[str, Any] | None:
    """None when ``name`` is no registered entry."""
    spec = sources.specs().get(name)
    if spec is None:
        return None
    now = datetime.fromtimestamp(sources.clock(), timezone.utc)
    statuses = [s for s in (statuses or []) if s in RUN_STATUSES]
    page = max(page, 1)
    status = _row_of(sources, name)
    runs, total, problem = [], 0, None
    if sources.history is not None:
        try:
            runs, total = entry_history(sources.history.engine, name, statuses=statuses,
                                        offset=(page - 1) * page_size, limit=page_size)
        except Exception as exc:
            problem = f"history unavailable: {type(exc).__name__}"
    for run in runs:
        run["flower_url"] = flower_link(sources.flower_url, run["task_id"])
    plan = build_plan({name: spec}, start=now, end=now + timedelta(days=365))
    return {"name": name, "at": now.isoformat(), "status": status, "policy": policy_of(spec),
            "args": spec.args, "kwargs": spec.kwargs, "description": spec.description,
            "history": {"runs": _jsonable(runs), "total": total, "page": page, "page_size": page_size,
                        "statuses": statuses, "problem": problem},
            "dst": [row for row in plan.to_json(max_fires=0)["dst"]]}


def _row_of(sources: DashboardSources, name: str) -> dict[str, Any] | None:
    specs = sources.specs()
    one = DashboardSources(**{**sources.__dict__, "specs": lambda: {name: specs[name]}})
    entries = overview_data(one)["entries"]
    return entries[0] if entries else None


def policy_of(spec: EntrySpec) -> dict[str, Any]:
    """Overlap, catch-up, retry, budget and limits as declared (None: the task's or the default)."""
    return _jsonable({"overlap": spec.overlap, "lock_ttl_s": spec.lock_ttl_s, "lock_key": spec.lock_key,
                      "max_runtime_s": spec.max_runtime_s, "time_limit_s": spec.time_limit_s,
                      "expires_s": spec.expires_s, "catchup": spec.catchup, "catchup_window_s": spec.catchup_window_s,
                      "catchup_max": spec.catchup_max, "retry": spec.retry,
                      "max_runs_per_hour": spec.max_runs_per_hour, "dst": spec.dst, "queue": spec.queue})


def flower_link(base: str | None, task_id: str) -> str | None:
    return f"{base.rstrip('/')}/task/{quote(task_id, safe='')}" if base and task_id else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

"""The overview's data: ``beatkeeper status --json`` (the same :func:`gather_status`) with, per
entry, what the dashboard adds: its row state, next fires, next DST effect, recent runs,
lateness, duration, pause and budget used."""
from __future__ import annotations

import functools
import json
from dataclasses import fields
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import redis

from monitoring.pauses import Pause, PauseStore
from monitoring.status import StatusReport, gather_status
from monitoring.web.history_reads import RecentRuns, recent_runs_of, runs_since_by_task
from monitoring.web.sources import DashboardSources
from schedules.dst import dst_effects
from schedules.entry import ZONED_KINDS, EntrySpec
from schedules.zones import zone

#: Row states, most urgent first (the filter's choices).
ROW_STATES = ("missed", "failing", "dead-lettered", "running", "late", "skipped by overlap", "paused",
              "never ran", "not registered", "ok")
NEXT_FIRES = 3
_LAST_STATUS_STATE = {"dead_lettered": "dead-lettered", "skipped_overlap": "skipped by overlap"}


def overview_data(sources: DashboardSources, *, state: str = "", queue: str = "", search: str = "") -> dict[str, Any]:
    """The status report as JSON, entries extended and filtered (``entries_total`` counts them all)."""
    now = datetime.fromtimestamp(sources.clock(), timezone.utc)
    specs = sources.specs()
    recent, problems = _recent(sources, specs)
    pauses, budgets = _pauses(sources.client, now), _budgets(sources, specs, now, problems)
    report = gather_status(client=sources.client, specs=specs, now=now, history=sources.history,
                           pauses={p.name: p.describe() for p in pauses.values()}, keys=sources.keys,
                           queue_of=sources.queue_of, last_runs={n: runs.last for n, runs in recent.items()})
    data = report_json(report)
    data["problems"] += problems
    running = {(lock.get("holder") or {}).get("entry") for lock in data["locks"]}
    rows = []
    for entry in data["entries"]:
        spec = specs[entry["name"]]
        runs = recent.get(entry["name"])
        entry.update(_extras(spec, runs, now))
        entry["row_state"] = _row_state(entry, runs, running, sources.late_after_s)
        entry["pause"] = _pause_json(pauses.get(entry["name"]) or pauses.get(spec.task))
        entry["budget"] = {"per_hour": spec.max_runs_per_hour, "used_last_hour": budgets.get(spec.task, 0)}
        rows.append(entry)
    data["entries_total"] = len(rows)
    filtered = state or queue or search.strip()
    data["entries"] = [r for r in rows if _matches(r, state=state, queue=queue, search=search)] if filtered else rows
    data["filters"] = {"state": state, "queue": queue, "search": search}
    return data


def report_json(report: StatusReport) -> dict[str, Any]:
    """``report.to_dict()`` (the ``status --json`` contract) without ``asdict``'s deep copies and,
    for the entries, without the text round trip: at 1,000 entries those cost more than the page."""
    shallow = {f.name: getattr(report, f.name) for f in fields(report) if f.name != "entries"}
    data = json.loads(json.dumps(shallow, default=_jsonable))
    data["entries"] = [_plain(vars(entry)) for entry in report.entries]
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)).isoformat()
    return str(value)


_NATIVE = (str, int, float, type(None))


def _plain(value: Any) -> Any:
    """``value`` as ``json.loads(json.dumps(value, default=_jsonable))`` gives it back (str keys)."""
    if isinstance(value, dict):
        return {key: item if isinstance(item, _NATIVE) else _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [item if isinstance(item, _NATIVE) else _plain(item) for item in value]
    return value if isinstance(value, _NATIVE) else _jsonable(value)


def _recent(sources: DashboardSources, specs: Mapping[str, EntrySpec]) -> tuple[dict[str, RecentRuns], list[str]]:
    if sources.history is None:
        return {}, []
    try:
        return recent_runs_of(sources.history.engine, specs), []
    except Exception as exc:  # the history down still shows the schedule, said in problems
        return {}, [f"history unavailable: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]


def _pauses(client: redis.Redis, now: datetime) -> dict[str, Pause]:
    try:
        return {p.name: p for p in PauseStore(client).list_pauses(now=now.timestamp())}
    except redis.RedisError:
        return {}  # gather_status reports Redis being unreachable


def _budgets(sources: DashboardSources, specs: Mapping[str, EntrySpec], now: datetime, problems: list[str]) -> dict:
    budgeted = [s.task for s in specs.values() if s.max_runs_per_hour]
    if sources.history is None or not budgeted or problems:
        return {}
    return runs_since_by_task(sources.history.engine, budgeted, since=now - timedelta(hours=1))


def _extras(spec: EntrySpec, runs: RecentRuns | None, now: datetime) -> dict[str, Any]:
    last = runs.last if runs else None
    return {"next_fires": next_fires(spec, now), "next_dst": next_dst_effect(spec, now.date()),
            "lateness_s": None if last is None else last.lateness_s,
            "duration_s": None if last is None else last.duration_s,
            "recent_runs": [{"status": status, "lateness_s": late} for status, late in (runs.strip if runs else [])]}


_FIRES: dict[tuple, tuple[float, float, list[dict[str, str]]]] = {}  # trigger, zone -> (from, until, fires)


def next_fires(spec: EntrySpec, now: datetime) -> list[dict[str, str]]:
    """The next ``NEXT_FIRES`` fires in the entry's zone and UTC. Kept until the first of them
    passes (they cannot change before): a page every 15 s does not recompute 3,000 fires."""
    key, now_s = (spec.trigger, spec.timezone), now.timestamp()
    cached = _FIRES.get(key)
    if cached is not None and cached[0] <= now_s < cached[1]:
        return cached[2]
    tz = zone(spec.timezone)
    fires, after = [], now
    for _ in range(NEXT_FIRES):
        nxt = spec.trigger.next_fire_after(after)
        if nxt is None:
            break
        fires.append({"local": nxt.astimezone(tz).isoformat(), "utc": nxt.astimezone(timezone.utc).isoformat()})
        after = nxt
    if len(_FIRES) > 50_000:
        _FIRES.clear()
    until_s = datetime.fromisoformat(fires[0]["utc"]).timestamp() if fires else now_s + 60
    _FIRES[key] = (now_s, until_s, fires)
    return fires


def next_dst_effect(spec: EntrySpec, day) -> dict[str, Any] | None:
    """The first DST change within a year from ``day`` that changes this entry's fires, or None."""
    if spec.kind not in ZONED_KINDS:
        return None
    return _first_effect(spec.trigger, day)


@functools.lru_cache(maxsize=4096)  # equal triggers have equal effects; a day's answer holds all day
def _first_effect(trigger, day) -> dict[str, Any] | None:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    for effect in dst_effects(trigger, start, start + timedelta(days=366)):
        if effect.effect not in ("none", "unaffected"):
            return {"effect": effect.effect, "detail": effect.detail}
    return None


def _row_state(entry: dict, runs: RecentRuns | None, running: set, late_after_s: float) -> str:
    state = entry["state"]
    if state in ("paused", "missed", "not registered"):
        return state
    if entry["name"] in running or state == "running long":
        return "running"
    if state == "failing":
        return state
    last = runs.last if runs else None
    if last is None:
        return "never ran"
    if last.status in _LAST_STATUS_STATE:
        return _LAST_STATUS_STATE[last.status]
    if last.lateness_s is not None and last.lateness_s > late_after_s:
        return "late"
    return "ok"


def _pause_json(pause: Pause | None) -> dict[str, Any] | None:
    if pause is None:
        return None
    until = None if pause.until is None else datetime.fromtimestamp(pause.until, timezone.utc).isoformat()
    return {"name": pause.name, "until": until, "reason": pause.reason, "by": pause.by}


def _matches(row: dict, *, state: str, queue: str, search: str) -> bool:
    if state and row["row_state"] != state:
        return False
    if queue and row["queue"] != queue:
        return False
    needle = search.strip().lower()
    return not needle or needle in row["name"].lower() or needle in row["task"].lower()

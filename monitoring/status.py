"""Everything ``beatkeeper status`` shows, gathered in one place (the CLI only renders it).

Each source is read on its own: Redis down still lists the entries (next fires from the
schedule, last runs from SQL); the history down still shows heartbeats, locks and alerts.
What could not be read is said in ``problems``, never left out silently.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis

from monitoring.events import EventKind
from monitoring.alerts import AlertStore
from monitoring.heartbeats import heartbeat_ages_s
from monitoring.history import HistoryStore, RunRecord
from monitoring.history_queries import last_run_of
from monitoring.rules.base import PlatformKeys, RuleContext, WorkerProbe
from monitoring.rules.infrastructure import queue_report
from monitoring.rules.settings import RuleSettings
from schedules.entry import EntrySpec

#: Alert rules that make an entry's state more than "ok", most serious first.
_STATE_OF_RULE = (("missed_run", "missed"), ("consecutive_failures", "failing"), ("run_failed", "failing"),
                  (EventKind.LONG_RUN.value, "running long"))


@dataclass(frozen=True)
class EntryStatus:
    name: str
    task: str
    schedule: str  # the trigger's description
    timezone: str
    queue: str
    state: str  # ok, paused, missed, failing, running long, never ran, not registered
    next_fire_at: datetime | None
    last_run: dict[str, Any] | None  # status, finished_at, fire_at, duration_s, error
    paused: str | None  # the pause's description
    alerts: list[str] = field(default_factory=list)  # rules firing for it


@dataclass(frozen=True)
class StatusReport:
    at: datetime
    heartbeat_ages_s: dict[str, float]
    beat_lock_ttl_s: float | None  # None: no beat holds the lock
    queues: dict[str, dict[str, Any]]
    workers: dict[str, list[str]] | None  # None: not asked or no answer
    entries: list[EntryStatus]
    locks: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    problems: list[str]  # sources that could not be read

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return str(value)


def gather_status(*, client: redis.Redis, specs: Mapping[str, EntrySpec], now: datetime,
                  history: HistoryStore | None = None, workers: WorkerProbe | None = None,
                  pauses: Mapping[str, str] | None = None, keys: PlatformKeys | None = None,
                  queue_of: Callable[[EntrySpec], str] | None = None,
                  last_runs: Mapping[str, RunRecord] | None = None, broker: Any = None) -> StatusReport:
    """The status at ``now``; ``pauses`` maps each paused entry or task name to its description.
    ``last_runs``: each entry's latest run when the caller has read them already (the dashboard)."""
    keys = keys or PlatformKeys()
    pauses = pauses or {}
    problems: list[str] = []
    ctx = RuleContext(now=now.timestamp(), client=client, specs=specs, settings=RuleSettings(), keys=keys,
                      first_start=now.timestamp(), workers=workers, queue_of=queue_of, broker=broker)
    ages, lock_ttl_s, next_fires, registered, alerts, locks, queues = {}, None, {}, None, [], [], {}
    try:
        ages = heartbeat_ages_s(client, now=now.timestamp())
        ttl_ms = client.pttl(keys.redbeat_lock_key)
        lock_ttl_s = ttl_ms / 1000 if ttl_ms is not None and ttl_ms >= 0 else None
        next_fires = {m.removeprefix(keys.redbeat_prefix): s
                      for m, s in client.zrange(keys.redbeat_schedule_key, 0, -1, withscores=True)}
        registered = set(next_fires)
        alerts = [{**a.alert.to_dict(), "since": a.since} for a in AlertStore(client).active().values()]
        locks = held_locks(client, keys)
    except redis.RedisError as exc:
        problems.append(f"Redis is unreachable: {exc}")
    if not problems:
        try:
            queues = queue_report(ctx)
        except Exception as exc:  # workers did not answer, or Redis failed mid-way
            problems.append(f"workers and queues unknown: {type(exc).__name__}: {exc}")
    read_runs = last_runs is None
    last_runs = dict(last_runs or {})
    if history is not None and read_runs:
        try:
            last_runs = last_run_of(history.engine, specs)
        except Exception as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            problems.append(f"history unavailable: {type(exc).__name__}: {first_line}")
    entries = [_entry_status(name, spec, now=now, ctx=ctx, next_fire_s=next_fires.get(name),
                             registered=registered, last=last_runs.get(name), pauses=pauses, alerts=alerts)
               for name, spec in sorted(specs.items())]
    return StatusReport(at=now, heartbeat_ages_s=ages, beat_lock_ttl_s=lock_ttl_s, queues=queues,
                        workers=ctx.cache.get("workers") if workers is not None else None, entries=entries, locks=locks,
                        alerts=sorted(alerts, key=lambda a: (a["severity"], a["rule"], a["subject"])),
                        problems=problems)


def _entry_status(name: str, spec: EntrySpec, *, now: datetime, ctx: RuleContext, next_fire_s: float | None,
                  registered: set[str] | None, last: RunRecord | None, pauses: Mapping[str, str],
                  alerts: list[dict[str, Any]]) -> EntryStatus:
    firing = sorted(a["rule"] for a in alerts if a["subject"] == name)
    paused = pauses.get(name) or pauses.get(spec.task)
    if next_fire_s is not None and next_fire_s >= 0:
        next_fire = datetime.fromtimestamp(next_fire_s, timezone.utc)
    else:
        next_fire = spec.trigger.next_fire_after(now)
    state = next((label for rule, label in _STATE_OF_RULE if rule in firing), None)
    if paused:
        state = "paused"
    elif state is None:
        if registered is not None and name not in registered:
            state = "not registered"
        elif last is None:
            state = "never ran"
        else:
            state = "failing" if last.status in ("failure", "lost") else "ok"
    return EntryStatus(name=name, task=spec.task, schedule=_described(spec.trigger), timezone=spec.timezone,
                       queue=ctx.queue(spec), state=state, next_fire_at=next_fire, last_run=_run_summary(last),
                       paused=paused, alerts=firing)


_DESCRIBED: dict[int, tuple[Any, str]] = {}  # id(trigger) -> (trigger, its words): the page asks every 15 s


def _described(trigger) -> str:
    """``trigger.describe()``, kept per trigger object (immutable): its identity, not its equality, is
    the key, since equal triggers may be described differently (a one-off's local time)."""
    cached = _DESCRIBED.get(id(trigger))
    if cached is None or cached[0] is not trigger:
        if len(_DESCRIBED) > 50_000:
            _DESCRIBED.clear()
        cached = _DESCRIBED[id(trigger)] = (trigger, trigger.describe())
    return cached[1]


def _run_summary(record: RunRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    error = ": ".join(p for p in (record.error_type, record.error_message) if p) or record.reason
    return {"status": record.status, "finished_at": record.finished_at, "fire_at": record.fire_at,
            "duration_s": record.duration_s, "detail": error}


def held_locks(client: redis.Redis, keys: PlatformKeys) -> list[dict[str, Any]]:
    """Every task lock held now: key, seconds left, and who holds it (from the holder record)."""
    names = sorted(k for k in client.scan_iter(match=keys.lock_prefix + "*", count=500))
    names = [k for k in names if not k.endswith((keys.lock_meta_suffix, ":buffer"))]
    if not names:
        return []
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.pttl(name)
            pipe.hget(name + keys.lock_meta_suffix, "holder")
        replies = pipe.execute()
    locks = []
    for name, ttl_ms, holder in zip(names, replies[::2], replies[1::2]):
        if ttl_ms is None or ttl_ms == -2:
            continue  # released between the scan and now
        locks.append({"key": name, "ttl_s": None if ttl_ms < 0 else ttl_ms / 1000,
                      "holder": json.loads(holder) if holder else None})
    return locks


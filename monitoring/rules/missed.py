"""``missed_run``: a fire instant the schedule says was due has no run on record.

For each registered entry (in the validated schedule *and* registered by beat in redbeat),
the instants due since the entry's watermark come from ``spec.trigger.fires_between`` —
the code ``beatkeeper plan`` lists with. An instant is judged once its grace has passed:
``max(missed_grace_s, missed_grace_fraction x the gap to the entry's next fire)``, plus, for
an entry that takes no lock (``overlap: allow``), its declared ``max_runtime`` or
``expected_runtime``, since a run's history row is written when it *ends*. Then:

- a row for the instant whose run executed or was deliberately skipped (paused, overlap,
  budget) means it ran as far as the schedule is concerned;
- an instant due while the entry or its task was paused (``monitoring.pauses``) is never a
  miss, whatever its row says;
- no row, or only an ``expired`` one (it waited past ``expires`` and never executed), is a
  miss, unless a lock of the entry taken at or after the instant is still held (the run is
  in progress): the judgement then waits.

Each miss is counted once in ``beatkeeper_schedule_miss_total`` and logged once with its
instant; the entry's incident fires until a later instant of it runs. The watermark (per
entry, in Redis) moves past every judged instant in the same transaction as the count, so
a restart neither repeats nor skips one. An entry gets its watermark the first time the
monitor sees it registered, so nothing before its registration (or before the monitor's
first start) is ever judged; an entry no longer registered loses its watermark.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from monitoring.alerts import Alert, Severity
from monitoring.history_queries import instant_key, statuses_by_fire_instant
from monitoring.metrics import RunMetrics
from monitoring.rules.base import MONITOR_PREFIX, NEEDS_HISTORY, NEEDS_REDIS, Rule, RuleContext, local_and_utc
from monitoring.rules.incidents import Incident, IncidentBook
from schedules.entry import EntrySpec, OverlapPolicy
from schedules.trigger import from_epoch_us, to_epoch_us

log = logging.getLogger(__name__)

RULE = "missed_run"
WATERMARKS_KEY = MONITOR_PREFIX + "missed:checked"  # hash: entry -> epoch microseconds judged up to (exclusive)
NOT_EXECUTED_STATUSES = frozenset({"expired"})
MAX_INSTANTS_PER_EVALUATION = 10_000  # per entry; a dense entry after a long outage catches up over several
LISTED_INSTANTS = 20  # instants kept in an incident (all are counted)
_LOCK_SLACK_S = 1.0  # a lock taken a moment before the instant (clock skew) still counts


@dataclass
class EntryVerdict:
    """What one evaluation judged of one entry's due instants."""

    missed: list[datetime] = field(default_factory=list)
    ran: list[datetime] = field(default_factory=list)
    paused: list[datetime] = field(default_factory=list)  # due while the entry or its task was paused
    expired: list[datetime] = field(default_factory=list)
    judged_until: datetime | None = None  # the next watermark


def grace_s(spec: EntrySpec, instant: datetime, *, min_grace_s: float, fraction: float) -> float:
    """How long after ``instant`` its run may still appear in the history."""
    following = spec.trigger.next_fire_after(instant)
    gap_s = 0.0 if following is None else (following - instant).total_seconds()
    grace = max(min_grace_s, fraction * gap_s)
    if spec.overlap is OverlapPolicy.ALLOW:  # no lock shows a run in progress: wait for it to end
        grace += max(spec.max_runtime_s or 0.0, spec.expected_runtime_s or 0.0)
    return grace


class MissedRunsRule(Rule):
    names = (RULE,)
    needs = frozenset({NEEDS_REDIS, NEEDS_HISTORY})

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        client = ctx.client
        registered = ctx.redbeat_entries()
        specs = {name: spec for name, spec in ctx.specs.items() if name in registered}
        watermarks = {k: int(v) for k, v in client.hgetall(WATERMARKS_KEY).items()}
        book = IncidentBook(client, RULE)
        incidents = book.load()
        new_marks: dict[str, int] = {}
        changed: dict[str, Incident] = {}
        misses: dict[str, int] = {}
        locks = _EntryLocks(ctx)
        for name, spec in sorted(specs.items()):
            if name not in watermarks:  # first seen registered: judge only what is due after now
                new_marks[name] = to_epoch_us(ctx.now_dt) + 1
                continue
            verdict = self._judge(ctx, name, spec, from_epoch_us(watermarks[name]), locks)
            if verdict.judged_until is not None:  # never backwards: a clock stepping back re-judges nothing
                new_marks[name] = max(watermarks[name], to_epoch_us(verdict.judged_until))
            incident = self._update_incident(ctx, name, spec, incidents.get(name), verdict)
            if incident is not None:
                incidents[name] = changed[name] = incident
            if verdict.missed:
                misses[name] = len(verdict.missed)
        closed = [name for name, incident in incidents.items()
                  if incident.data.get("recovered_at") is not None and incident.closable_at(ctx.now)]
        closed += [name for name in incidents if name not in specs]  # unregistered: nothing left to miss
        stale_marks = [name for name in watermarks if name not in specs]
        with client.pipeline(transaction=True) as pipe:
            if new_marks:
                pipe.hset(WATERMARKS_KEY, mapping=new_marks)
            if stale_marks:
                pipe.hdel(WATERMARKS_KEY, *stale_marks)
            book.stage(pipe, upsert=changed, close=closed)
            metrics = RunMetrics(pipe)  # the count rides in the same transaction as the watermark
            for name, count in misses.items():
                metrics.record_miss(entry=name, count=count)
            pipe.execute()
        return [self._alert(name, incident, specs[name]) for name, incident in sorted(incidents.items())
                if name not in closed]

    def _judge(self, ctx: RuleContext, name: str, spec: EntrySpec, start: datetime,
               locks: _EntryLocks) -> EntryVerdict:
        now = ctx.now_dt
        verdict = EntryVerdict()
        due = list(islice(spec.trigger.fires_between(start, now), MAX_INSTANTS_PER_EVALUATION))
        if not due:
            verdict.judged_until = now
            return verdict
        recorded = statuses_by_fire_instant(ctx.history.engine, entry=name, start=due[0],
                                            end=due[-1] + timedelta(microseconds=1))
        settings = ctx.settings
        spans = ctx.pause_spans()
        pauses = [*spans.get(name, ()), *spans.get(spec.task, ())]
        for instant in due:
            grace = grace_s(spec, instant, min_grace_s=settings.missed_grace_s, fraction=settings.missed_grace_fraction)
            if instant + timedelta(seconds=grace) > now:
                verdict.judged_until = instant
                return verdict
            statuses = recorded.get(instant_key(instant), set())
            if any(p.covers(instant.timestamp()) for p in pauses) and not statuses - NOT_EXECUTED_STATUSES:
                verdict.paused.append(instant)  # the operator stopped it: not a miss, not a recovery
            elif statuses - NOT_EXECUTED_STATUSES:
                verdict.ran.append(instant)
            elif not statuses and locks.in_progress(name, instant):
                verdict.judged_until = instant  # its run holds the lock: judge it when it ends
                return verdict
            else:
                verdict.missed.append(instant)
                if statuses:
                    verdict.expired.append(instant)
        verdict.judged_until = now if len(due) < MAX_INSTANTS_PER_EVALUATION else due[-1] + timedelta(microseconds=1)
        return verdict

    @staticmethod
    def _update_incident(ctx: RuleContext, name: str, spec: EntrySpec, incident: Incident | None,
                         verdict: EntryVerdict) -> Incident | None:
        for instant in verdict.missed:
            how = "expired before a worker ran it" if instant in verdict.expired else "no run recorded"
            log.warning("missed run: entry %s scheduled at %s: %s", name, local_and_utc(instant, spec.timezone), how)
        if verdict.missed:
            listed = [t.isoformat() for t in verdict.missed]
            if incident is None:
                incident = Incident(subject=name, opened_at=ctx.now, first_at=verdict.missed[0].timestamp(),
                                    last_at=verdict.missed[-1].timestamp(), count=0)
            incident.count += len(verdict.missed)
            incident.last_at = verdict.missed[-1].timestamp()
            incident.seen_at = ctx.now
            incident.data["instants"] = (incident.data.get("instants", []) + listed)[-LISTED_INSTANTS:]
            incident.data["expired"] = incident.data.get("expired", 0) + len(verdict.expired)
            incident.data["recovered_at"] = None
        if incident is None or incident.data.get("recovered_at") is not None:
            return incident if verdict.missed else None
        later = [t for t in verdict.ran if t.timestamp() > incident.last_at]
        if later:
            incident.data["recovered_at"] = later[0].timestamp()
            return incident
        return incident if verdict.missed else None  # None: nothing new to write

    @staticmethod
    def _alert(name: str, incident: Incident, spec: EntrySpec) -> Alert:
        instants = [datetime.fromisoformat(t) for t in incident.data.get("instants", [])]
        shown = ", ".join(local_and_utc(t, spec.timezone) for t in instants[-3:])
        more = f" (latest 3 of {incident.count})" if incident.count > 3 else ""
        details: dict[str, Any] = {"entry": name, "task": spec.task, "count": incident.count,
                                   "instants": incident.data.get("instants", []),
                                   "expired": incident.data.get("expired", 0)}
        return Alert(RULE, name, Severity.CRITICAL,
                     f"entry {name} ({spec.task}) missed {incident.count} scheduled run(s): {shown}{more}", details)


class _EntryLocks:
    """Locks held right now by runs of each entry (read lazily, once per evaluation)."""

    def __init__(self, ctx: RuleContext):
        self.ctx = ctx
        self._held: dict[str, list[float]] | None = None

    def in_progress(self, entry: str, instant: datetime) -> bool:
        if self._held is None:
            self._held = self._read()
        return any(at >= instant.timestamp() - _LOCK_SLACK_S for at in self._held.get(entry, []))

    def _read(self) -> dict[str, list[float]]:
        keys, client = self.ctx.keys, self.ctx.client
        metas = [k for k in client.scan_iter(match=f"{keys.lock_prefix}*{keys.lock_meta_suffix}", count=500)]
        if not metas:
            return {}
        with client.pipeline(transaction=False) as pipe:
            for meta in metas:
                pipe.hget(meta, "holder")
                pipe.exists(meta.removesuffix(keys.lock_meta_suffix))
            replies = pipe.execute()
        held: dict[str, list[float]] = {}
        for holder, exists in zip(replies[::2], replies[1::2]):
            if not holder or not exists:  # a holder record without its lock: a run that died
                continue
            record = json.loads(holder)
            if record.get("entry") and record.get("locked_at") is not None:
                held.setdefault(record["entry"], []).append(float(record["locked_at"]))
        return held


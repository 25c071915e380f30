"""How runs end: too long, failed, failing in a row, too many.

- ``long_run``: a run crossed its ``max_runtime`` (the task side records a ``long_run``
  event the moment it does); fires while it still runs, resolves when its history row
  shows it ended;
- ``run_failed``: a run failed after its last retry (a ``failure`` row: retries end as
  ``retry``); per entry (or task, for hand-triggered runs), resolved by a later success;
- ``consecutive_failures``: an entry's latest N runs (``consecutive_failures``, default 3)
  all failed or were lost;
- ``invocations_per_hour``: a task ran more than ``invocations_per_hour`` (default 1000)
  times in the rolling hour the budget counts (``budget_exceeded`` is the budget refusing, or
  for a plain task observing; a task with an open ``budget_exceeded`` incident is not alerted
  on twice).
"""
from __future__ import annotations

from typing import Any

from monitoring.events import EventKind
from monitoring.alerts import Alert, Severity
from monitoring.history_queries import (finished_task_ids, latest_row_id, recent_ran_statuses, rows_after,
                                        subject_of)
from monitoring.metrics import INVOCATION_TASKS_KEY, INVOCATION_WINDOW_S, invocation_window_key
from monitoring.rules.base import NEEDS_HISTORY, NEEDS_REDIS, Rule, RuleContext
from monitoring.rules.events import read_new_events
from monitoring.rules.incidents import Incident, IncidentBook, cursor_key

LONG_RUN = EventKind.LONG_RUN.value
RUN_FAILED = "run_failed"
CONSECUTIVE = "consecutive_failures"
RATE = "invocations_per_hour"
ROW_BATCH = 500
MAX_ROW_BATCHES = 20  # per evaluation
FAILED_STATUSES = ("failure", "lost")
UNKNOWN_TASK_ERROR = "NotRegistered"  # error_type of the history row of a message for a task no worker knows


class LongRunRule(Rule):
    names = (LONG_RUN,)
    needs = frozenset({NEEDS_REDIS, NEEDS_HISTORY})

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        key = cursor_key(LONG_RUN)
        events, cursor = read_new_events(ctx.client, key)
        book = IncidentBook(ctx.client, LONG_RUN)
        incidents = book.load()
        changed: dict[str, Incident] = {}
        for event in events:
            if event.kind != LONG_RUN:
                continue
            incident = incidents.get(event.subject) or Incident(subject=event.subject, opened_at=ctx.now,
                                                                first_at=event.at, last_at=event.at, count=0)
            incident.count += 1
            incident.last_at = event.at
            incident.data.setdefault("runs", {})[event.data.get("task_id", "?")] = event.data
            incidents[event.subject] = changed[event.subject] = incident
        running = {task_id for incident in incidents.values() for task_id in incident.data.get("runs", {})}
        ended = finished_task_ids(ctx.history.engine, running)
        closed = []
        for subject, incident in incidents.items():
            runs = incident.data.get("runs", {})
            if incident.closable_at(ctx.now) and all(t in ended or not r.get("still_running") for t, r in runs.items()):
                closed.append(subject)
        with ctx.client.pipeline(transaction=True) as pipe:
            pipe.set(key, cursor)
            book.stage(pipe, upsert=changed, close=closed)
            pipe.execute()
        return [_long_run_alert(ctx, s, i, ended) for s, i in sorted(incidents.items()) if s not in closed]


def _long_run_alert(ctx: RuleContext, subject: str, incident: Incident, ended: set[str]) -> Alert:
    parts = []
    for task_id, run in sorted(incident.data.get("runs", {}).items()):
        limit = run.get("max_runtime_s", "?")
        if run.get("still_running") and task_id not in ended and run.get("started_at") is not None:
            parts.append(f"run {task_id} still running after {ctx.now - float(run['started_at']):.0f} s "
                         f"(max_runtime {limit} s)")
        else:
            parts.append(f"run {task_id} ran {run.get('elapsed_s', '?')} s (max_runtime {limit} s)")
    return Alert(LONG_RUN, subject, Severity.WARNING, f"{subject}: " + "; ".join(parts),
                 {"runs": incident.data.get("runs", {})})


class FailedRunRule(Rule):
    names = (RUN_FAILED,)
    needs = frozenset({NEEDS_REDIS, NEEDS_HISTORY})

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        key = cursor_key(RUN_FAILED)
        engine = ctx.history.engine
        stored = ctx.client.get(key)
        book = IncidentBook(ctx.client, RUN_FAILED)
        incidents = book.load()
        changed: dict[str, Incident] = {}
        if stored is None:  # first start: failures before it are history, not news
            cursor = latest_row_id(engine)
        else:
            cursor = int(stored)
            for _ in range(MAX_ROW_BATCHES):
                rows = rows_after(engine, after_id=cursor, statuses=("failure", "success"), limit=ROW_BATCH)
                for row_id, record in rows:
                    self._apply(ctx, record, incidents, changed)
                    cursor = row_id
                if len(rows) < ROW_BATCH:
                    break
        closed = [s for s, i in incidents.items() if i.data.get("recovered_at") is not None and i.closable_at(ctx.now)]
        with ctx.client.pipeline(transaction=True) as pipe:
            pipe.set(key, cursor)
            book.stage(pipe, upsert=changed, close=closed)
            pipe.execute()
        return [_failed_alert(s, i) for s, i in sorted(incidents.items()) if s not in closed]

    @staticmethod
    def _apply(ctx: RuleContext, record: Any, incidents: dict[str, Incident], changed: dict[str, Incident]) -> None:
        if record.error_type == UNKNOWN_TASK_ERROR:
            return  # never ran: the task_unknown event alerts on it (and resolves when the messages stop)
        subject = subject_of(record)
        finished = record.finished_at.timestamp()
        incident = incidents.get(subject)
        if record.status == "success":
            if incident is not None and incident.data.get("recovered_at") is None and finished >= incident.last_at:
                incident.data["recovered_at"] = finished
                changed[subject] = incident
            return
        if incident is None:
            incident = Incident(subject=subject, opened_at=ctx.now, first_at=finished, last_at=finished, count=0)
        incident.count += 1
        incident.last_at = max(incident.last_at, finished)
        incident.seen_at = ctx.now
        incident.data = {"task": record.task_name, "task_id": record.task_id, "retries": record.attempt,
                         "error_type": record.error_type, "error_message": (record.error_message or "")[:500],
                         "hostname": record.hostname, "recovered_at": None,
                         "fire_at": None if record.fire_at is None else record.fire_at.isoformat()}
        incidents[subject] = changed[subject] = incident


def _failed_alert(subject: str, incident: Incident) -> Alert:
    data = incident.data
    error = ": ".join(p for p in (data.get("error_type"), data.get("error_message")) if p) or "no error recorded"
    retries = f" after {data.get('retries')} retr{'y' if data.get('retries') == 1 else 'ies'}" \
        if data.get("retries") else ""
    more = f" ({incident.count} failures since it last succeeded)" if incident.count > 1 else ""
    return Alert(RUN_FAILED, subject, Severity.WARNING,
                 f"{subject} ({data.get('task')}) failed{retries}: {error}{more}", dict(data, count=incident.count))


class ConsecutiveFailuresRule(Rule):
    names = (CONSECUTIVE,)
    needs = frozenset({NEEDS_HISTORY})

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        limit = ctx.settings.consecutive_failures
        alerts = []
        for name, spec in sorted(ctx.specs.items()):
            statuses = recent_ran_statuses(ctx.history.engine, entry=name, limit=limit)
            if len(statuses) == limit and all(s in FAILED_STATUSES for s in statuses):
                alerts.append(Alert(CONSECUTIVE, name, Severity.CRITICAL,
                                    f"entry {name} ({spec.task}): its last {limit} runs all failed",
                                    {"task": spec.task, "statuses": statuses}))
        return alerts


class InvocationRateRule(Rule):
    names = (RATE,)

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        limit = ctx.settings.invocations_per_hour
        # A task whose budget already alerted (a plain task runs on past it) is one incident, not two.
        budget_alerted = {k.split("|", 1)[1] for k in IncidentBook(ctx.client, "events").load()
                          if k.startswith("budget_exceeded|")}
        tasks = sorted(t for t in (t for t in ctx.client.smembers(INVOCATION_TASKS_KEY))
                       if t not in budget_alerted)
        if not tasks:
            return []
        with ctx.client.pipeline(transaction=False) as pipe:
            for task in tasks:
                pipe.zcount(invocation_window_key(task), f"({ctx.now - INVOCATION_WINDOW_S}", ctx.now)
            counts = pipe.execute()
        return [Alert(RATE, task, Severity.CRITICAL,
                      f"task {task} ran {count} times in the last hour (limit {limit}): a runaway schedule or loop?",
                      {"runs": count, "limit": limit})
                for task, count in zip(tasks, counts) if count > limit]


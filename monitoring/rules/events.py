"""Alerts on platform events: what other parts of beatkeeper recorded in ``beatkeeper:events``.

Each event kind below is its own alert rule; the subject is the event's (an entry, a task,
"schedule"). Repeated events of one kind and subject are one incident: it fires at the
first, counts the others, and resolves once no new one has come for ``event_quiet_s``
(default 15 min; ``budget_exceeded`` at least 65 min, as the budget reports once an hour).
The stream is read from a cursor kept in Redis, first set to the stream's end, so a fresh
monitor never alerts on history it did not witness.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis

from monitoring.alerts import Alert, Severity
from monitoring.events import EVENTS_KEY, Event, EventKind, read_events
from monitoring.rules.base import Rule, RuleContext
from monitoring.rules.incidents import Incident, IncidentBook, cursor_key

READ_BATCH = 1000
MAX_BATCHES = 20  # per evaluation; a backlog is read over several
BUDGET_QUIET_MIN_S = 3900.0


def _overlap(subject: str, count: int, data: Mapping[str, Any]) -> str:
    latest = data.get("reason") or data.get("action", "")
    return f"{subject}: {count} overlapping run(s) detected (latest: {data.get('action', '?')}: {latest})"


def _budget(subject: str, count: int, data: Mapping[str, Any]) -> str:
    then = "further runs are skipped" if data.get("enforced", True) else \
        "its runs still execute (a plain task: no entry, no declared policy): a loop enqueueing it?"
    return (f"task {subject} hit its budget of {data.get('budget', '?')} runs per hour "
            f"({data.get('runs', '?')} in the last hour): {then}")


def _unknown(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return (f"task {subject}: {count} message(s) for a task no worker has registered (latest "
            f"{data.get('task_id', '?')} on {data.get('hostname') or '?'}): not executed; is its module in "
            "BEATKEEPER_TASK_MODULES?")


def _lost(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return (f"{subject}: {count} run(s) lost (latest {data.get('task_id', '?')} on {data.get('hostname') or '?'}: "
            "its worker died and its lock expired unreleased)")


def _changed(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return (f"the registered schedule changed (fingerprint {str(data.get('previous', '?'))[:12]} -> "
            f"{str(data.get('current', '?'))[:12]}); check `beatkeeper plan`")


def _caught_up(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return (f"entry {subject}: beat found {data.get('count', '?')} instant(s) missed while it was down "
            f"(from {data.get('first', '?')} to {data.get('last', '?')}); its catch-up policy decided which ran")


def _restored(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return f"entry {subject} vanished from redbeat's schedule and beat restored it ({count} time(s))"


def _pipeline_failed(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return (f"pipeline {subject}: run {data.get('run_id', '?')} failed at step {data.get('step', '?')} after "
            f"{data.get('attempts', '?')} attempt(s): {data.get('error', '?')}; "
            f"`beatkeeper pipeline resume {data.get('run_id', 'RUN_ID')}` continues from there")


def _pipeline_stalled(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return (f"pipeline {subject}: run {data.get('run_id', '?')} stalled at step {data.get('step', '?')} "
            f"since {data.get('since', '?')} ({data.get('action', '?')})")


def _dead_lettered(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return (f"{subject}: run {data.get('run_id', '?')} dead-lettered after its worker died "
            f"{data.get('deaths', '?')} time(s) (cap {data.get('max_redeliveries', '?')}); it will not be retried")


def _dispatch_lost(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return (f"{subject}: the run for {data.get('fire_at', '?')} never reached a worker although the broker "
            f"accepted it, sent {data.get('sends', '?')} time(s) to queue {data.get('queue', '?')}; it did not run")


def _message_rejected(subject: str, count: int, data: Mapping[str, Any]) -> str:
    return (f"{count} poison message(s) for task {subject} rejected by the workers, not run (latest: "
            f"{data.get('reason', '?')}; queue {data.get('queue', '?')})")


#: kind -> (severity, summary builder). ``long_run`` is the runs rule's (it resolves on the run's end).
EVENT_RULES: dict[str, tuple[Severity, Callable[[str, int, Mapping[str, Any]], str]]] = {
    EventKind.OVERLAP_DETECTED.value: (Severity.WARNING, _overlap),
    EventKind.BUDGET_EXCEEDED.value: (Severity.CRITICAL, _budget),
    EventKind.RUN_LOST.value: (Severity.CRITICAL, _lost),
    EventKind.SCHEDULE_CHANGED.value: (Severity.WARNING, _changed),
    EventKind.MISSED_RUNS.value: (Severity.WARNING, _caught_up),
    EventKind.SCHEDULE_ENTRY_RESTORED.value: (Severity.WARNING, _restored),
    EventKind.PIPELINE_FAILED.value: (Severity.CRITICAL, _pipeline_failed),
    EventKind.PIPELINE_STALLED.value: (Severity.WARNING, _pipeline_stalled),
    EventKind.RUN_DEAD_LETTERED.value: (Severity.CRITICAL, _dead_lettered),
    EventKind.DISPATCH_LOST.value: (Severity.CRITICAL, _dispatch_lost),
    EventKind.TASK_UNKNOWN.value: (Severity.CRITICAL, _unknown),
    EventKind.MESSAGE_REJECTED.value: (Severity.CRITICAL, _message_rejected),
}


def read_new_events(client: redis.Redis, key: str) -> tuple[list[Event], str]:
    """Events after the cursor at ``key`` (set to the stream's end the first time) and the new cursor."""
    cursor = client.get(key)
    if cursor is None:
        latest = client.xrevrange(EVENTS_KEY, count=1)
        return [], latest[0][0] if latest else "0-0"
    cursor = cursor
    events: list[Event] = []
    for _ in range(MAX_BATCHES):
        batch = read_events(client, after_id=cursor, count=READ_BATCH)
        if not batch:
            break
        events.extend(batch)
        cursor = batch[-1].id
        if len(batch) < READ_BATCH:
            break
    return events, cursor


class EventsRule(Rule):
    names = tuple(EVENT_RULES)
    book_name = "events"  # also read by InvocationRateRule

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        key = cursor_key(self.book_name)
        events, cursor = read_new_events(ctx.client, key)
        book = IncidentBook(ctx.client, self.book_name)
        incidents = book.load()
        changed: dict[str, Incident] = {}
        for event in events:
            if event.kind not in EVENT_RULES:
                continue
            subject_key = f"{event.kind}|{event.subject}"
            incident = incidents.get(subject_key)
            if incident is None:
                incident = Incident(subject=subject_key, opened_at=ctx.now, first_at=event.at, last_at=event.at,
                                    count=0)
            incident.count += 1
            incident.last_at = max(incident.last_at, event.at)
            incident.seen_at = ctx.now  # quiet is measured on the monitor's clock, from when it saw one
            incident.data = dict(event.data)
            incidents[subject_key] = changed[subject_key] = incident
        closed = [k for k, incident in incidents.items()
                  if incident.closable_at(ctx.now) and ctx.now - incident.seen_at >= self._quiet_s(ctx, k)]
        with ctx.client.pipeline(transaction=True) as pipe:
            pipe.set(key, cursor)
            book.stage(pipe, upsert=changed, close=closed)
            pipe.execute()
        return [self._alert(k, incident) for k, incident in sorted(incidents.items()) if k not in closed]

    @staticmethod
    def _quiet_s(ctx: RuleContext, subject_key: str) -> float:
        kind = subject_key.split("|", 1)[0]
        quiet_s = ctx.settings.event_quiet_s
        return max(quiet_s, BUDGET_QUIET_MIN_S) if kind == EventKind.BUDGET_EXCEEDED.value else quiet_s

    @staticmethod
    def _alert(subject_key: str, incident: Incident) -> Alert:
        kind, subject = subject_key.split("|", 1)
        severity, summary = EVENT_RULES[kind]
        return Alert(kind, subject, severity, summary(subject, incident.count, incident.data),
                     {"count": incident.count, "first_at": incident.first_at, "last_at": incident.last_at,
                      "latest": incident.data})


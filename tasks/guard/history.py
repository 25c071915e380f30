"""Every run on record: the history middleware and the per-process drainer.

``HistoryMiddleware`` turns each Run and its Outcome into a ``monitoring.history.RunRecord``
(skips, retries, expired and lost runs included) and spools it; a ``Drainer`` thread in each
worker process moves the spool to SQL about once a second. The run itself never waits on
the database and never fails because of it (see ``monitoring.history``).

The *received* instant is when the worker took the message off the broker: a
``task_received`` handler stamps it into the request (it travels to a prefork child with the
rest of the request); a run without the stamp uses the instant the guard took it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any

import redis
from celery import current_task, signals

from monitoring.events import EventKind, record_event
from monitoring.history import HistoryStore, InvalidRunRecord, RunRecord, unix_to_utc
from monitoring.rules.runs import UNKNOWN_TASK_ERROR
from tasks import headers
from tasks.guard.middleware import Middleware
from monitoring.run_status import RunStatus
from tasks.guard.run import LostRun, Outcome, Run

log = logging.getLogger(__name__)

RECEIVED_AT = "beatkeeper_received_at"  # request field: unix seconds the worker received the message
#: ``run.state`` key of the Redis pipeline sent once at the end of the run (by history, outermost).
AFTER_RUN_PIPELINE = "history.after_run_pipeline"
DRAIN_INTERVAL_S = 1.0
DRAIN_RETRY_MAX_S = 30.0  # the longest wait between tries while the database is down


@signals.task_received.connect
def _stamp_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    request_dict = getattr(request, "request_dict", None)
    if isinstance(request_dict, dict):
        request_dict[RECEIVED_AT] = time.time()


@signals.task_unknown.connect
def _record_unknown_task(sender: Any = None, message: Any = None, exc: Any = None, name: str | None = None,
                         id: str | None = None, **_: Any) -> None:  # noqa: A002 (Celery's argument name)
    """A message for a task this worker does not know (``celery call no.such.task``): Celery drops
    it and marks it FAILURE; it is also recorded in the history and raises a ``task_unknown`` event."""
    app = getattr(sender, "app", None)
    if app is None:
        return
    try:
        sent = dict(getattr(message, "headers", None) or {})
        now = time.time()
        fire_at = sent.get(headers.FIRE_AT)
        hostname = getattr(sender, "hostname", "") or ""
        store = app.beatkeeper.history
        store.record(RunRecord(task_name=str(name), task_id=str(id or ""), status=RunStatus.FAILURE.value,
                               finished_at=unix_to_utc(now), received_at=unix_to_utc(now),
                               entry=str(sent.get(headers.ENTRY) or ""),
                               fire_at=datetime.fromisoformat(fire_at) if fire_at else None,
                               error_type=UNKNOWN_TASK_ERROR, hostname=hostname,
                               error_message=f"no task named {name!r} is registered in this worker: not executed"))
        DRAINER.wake(store)
        record_event(store.redis, EventKind.TASK_UNKNOWN, str(name), at=now, task_id=id, hostname=hostname)
    except Exception:  # a record that cannot be written must not stop the consumer
        log.exception("history: could not record the unknown task %s[%s]", name, id)


class Drainer:
    """A daemon thread per process that drains the spool every ``interval_s`` while there is work.

    One per process (:data:`DRAINER`): there is one spool, so one drainer, draining into the
    store it was last woken with. ``wake`` is cheap (called after each record); the thread
    starts lazily in each process, so a prefork child gets its own. While the database is
    down it backs off up to ``retry_max_s``.
    """

    def __init__(self, *, interval_s: float = DRAIN_INTERVAL_S, retry_max_s: float = DRAIN_RETRY_MAX_S):
        self.interval_s = interval_s
        self.retry_max_s = retry_max_s
        self.store: HistoryStore | None = None
        self._pending = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def wake(self, store: HistoryStore) -> None:
        """There is something to drain into ``store`` (soon, not now: a batch a second beats a write per run)."""
        self.store = store
        self._pending.set()
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    threading.Thread(target=self._loop, name="beatkeeper-history-drain", daemon=True).start()

    def _loop(self) -> None:
        delay_s = self.interval_s
        while True:
            self._pending.wait()
            time.sleep(delay_s)
            self._pending.clear()
            try:
                result = self.store.drain()
            except Exception as exc:  # Redis down too: the records wait in memory or in Redis
                log.warning("history: drain failed: %r", exc)
                result = None
            if result is None or result.error or result.refused:  # refused: not our database to fill
                delay_s = min(max(delay_s * 2, self.interval_s), self.retry_max_s)
                self._pending.set()  # nothing written: try again after the backoff
            else:
                delay_s = self.interval_s
                if result.pending:
                    self._pending.set()  # another process held the lock, or more arrived


#: The process's drainer.
DRAINER = Drainer()


class HistoryMiddleware(Middleware):
    """Records one history row per run attempt. Outermost, so it sees every outcome."""

    def __init__(self, store: HistoryStore, *, drainer: Drainer | None = None):
        self.store = store
        self.drainer = drainer

    def before_run(self, run: Run) -> None:
        # Later middlewares (metrics) queue their end-of-run writes here: one round trip for all.
        run.state[AFTER_RUN_PIPELINE] = self.store.redis.pipeline(transaction=False)
        return None

    def after_run(self, run: Run, outcome: Outcome) -> None:
        pipeline = run.state.pop(AFTER_RUN_PIPELINE, None)
        try:
            record = record_of(run, outcome, received_at=_received_at(run),
                               pipeline_run_id=_request_value(headers.PIPELINE_RUN))
        except InvalidRunRecord as exc:  # a status history does not know yet: keep the metrics anyway
            log.error("history: cannot record %s[%s]: %s", run.task_name, run.task_id, exc)
            _send(pipeline)
            return
        self.store.record(record, pipeline=pipeline)
        if self.drainer is not None:
            self.drainer.wake(self.store)

    def on_expired(self, run: Run) -> None:
        outcome = Outcome(status=RunStatus.EXPIRED, finished_at=time.time(),
                          reason="reached a worker after its expires")
        self._record(record_of(run, outcome, received_at=run.received_at))

    def on_run_lost(self, lost: LostRun) -> None:
        self._record(RunRecord(
            task_name=lost.task_name, task_id=lost.task_id, status=RunStatus.LOST.value,
            finished_at=unix_to_utc(lost.detected_at), entry=lost.entry, started_at=unix_to_utc(lost.started_at),
            hostname=lost.hostname, fencing_token=lost.fencing_token,
            reason=f"its lock {lost.lock_key} expired unreleased; found by {lost.detected_by}"))

    def _record(self, record: RunRecord) -> None:
        self.store.record(record)
        if self.drainer is not None:
            self.drainer.wake(self.store)


def _send(pipeline) -> None:
    if pipeline is None:
        return
    try:
        pipeline.execute()
    except redis.RedisError as exc:
        log.warning("history: end-of-run writes lost: %r", exc)


def record_of(run: Run, outcome: Outcome, *, received_at: float | None = None,
              pipeline_run_id: str | None = None) -> RunRecord:
    """The history row of one run attempt."""
    return RunRecord(
        task_name=run.task_name, task_id=run.task_id, status=outcome.status.value,
        finished_at=unix_to_utc(outcome.finished_at), entry=run.entry, attempt=run.retries,
        fire_at=_utc(run.fire_at), received_at=unix_to_utc(received_at if received_at is not None else run.received_at),
        started_at=unix_to_utc(run.started_at), error_type=outcome.error_type, error_message=outcome.error_message,
        reason=outcome.reason, hostname=run.hostname, fencing_token=run.fencing_token,
        pipeline_run_id=pipeline_run_id)


def lateness_s(run: Run) -> float | None:
    """Seconds from the scheduled fire instant to the body's start; None if either is unknown."""
    if run.fire_at is None or run.started_at is None:
        return None
    return run.started_at - run.fire_at.timestamp()


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _request_value(name: str) -> Any:
    # The middleware runs in the task's own thread, so the current task's request is this run's.
    task = current_task
    request = getattr(task, "request", None) if task else None
    return getattr(request, name, None)


def _received_at(run: Run) -> float:
    stamped = _request_value(RECEIVED_AT)
    try:
        return min(float(stamped), run.received_at) if stamped is not None else run.received_at
    except (TypeError, ValueError):
        return run.received_at

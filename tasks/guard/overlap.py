"""The overlap middleware: one run of a job at a time, enforced where the task executes.

Every run whose policy is not ``allow`` takes the job's lock (``tasks.locks.fenced.FencedLock``)
before its body, keeps it renewed while the body runs, and releases it after. When the lock
is held by another run:

- ``skip``: the run does not execute; it is counted, recorded as an ``overlap_detected``
  event and ends as ``skipped_overlap``;
- ``buffer_one``: the first such run takes the job's single buffer slot and waits, starting
  as soon as the lock frees; runs that find the slot taken are skipped;
- a redelivery of the very message that holds the lock (its worker died mid-run, the broker
  handed it out again) waits up to the remaining TTL: a dead holder's lock expires by then
  and the redelivery runs; a live holder keeps renewing and the duplicate is skipped.

A retry takes over its predecessor's lock through a handoff token carried in the retry's
message, so a task's own retry is never blocked by its own lock. A lock found with a holder
record left behind means that holder never released it: it is reported as lost.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Mapping

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from monitoring.events import EventKind, record_event
from monitoring.namespace import namespaced
from tasks.locks.fenced import RENEWER, FencedLock, Renewer
from tasks.guard.middleware import Middleware
from tasks.policy import OverlapPolicy
from monitoring.run_status import RunStatus
from tasks.guard.run import LostRun, Outcome, Run, Skip

log = logging.getLogger(__name__)

HANDOFF_HEADER = "beatkeeper_lock_handoff"
SKIPPED_COUNTS_KEY = namespaced("beatkeeper:overlap:skipped")  # hash: task name -> runs skipped for overlap
BUFFER_SUFFIX = ":buffer"
REDELIVERY_GRACE_S = 1.0  # beyond the dead holder's remaining TTL, for clock and poll slack

_LOCK = "overlap.lock"  # keys in run.state
_HANDED_OFF = "overlap.handed_off"
_LOST_REPORTED = "overlap.lost_reported"


class OverlapMiddleware(Middleware):
    """Applies the run's overlap policy; see the module docstring."""

    def __init__(self, client: redis.Redis, *, renewer: Renewer = RENEWER,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.02):
        self.client = client
        self.renewer = renewer
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.poll_s = poll_s

    def before_run(self, run: Run) -> Skip | None:
        if run.policy.overlap is OverlapPolicy.ALLOW or run.lock_key is None:
            return None
        lock = FencedLock(self.client, run.lock_key, ttl_s=run.policy.lock_ttl_s,
                          holder=_holder_record(run, locked_at=self.clock()))
        if lock.try_acquire(handoff_token=run.handoff_token):
            self._hold(run, lock)
            return None
        holder = lock.current_holder or {}
        if holder.get("task_id") == run.task_id and holder.get("retries") == run.retries:
            deadline = self.monotonic() + (lock.remaining_ttl_s or 0.0) + REDELIVERY_GRACE_S
            return self._wait_then_hold(run, lock, deadline=deadline, holder=holder, own_delivery_only=True,
                                        reason="an earlier delivery of this message still holds the lock")
        if run.policy.overlap is OverlapPolicy.BUFFER_ONE:
            return self._buffer(run, lock, holder)
        return self._skipped(run, holder, reason="the previous run still holds the lock")

    def for_plain_runs(self) -> None:
        return None  # a plain task runs as Celery would: two calls with the same arguments both run

    def after_run(self, run: Run, outcome: Outcome) -> None:
        lock: FencedLock | None = run.state.pop(_LOCK, None)
        if lock is None:
            return
        self.renewer.unwatch(lock)
        try:
            lock.release()
        except LockError:
            # A retry already took it over (expected), or it expired under us (recorded).
            if not run.state.get(_HANDED_OFF):
                self._lock_lost(run, lock, when="at release")

    def retry_headers(self, run: Run) -> Mapping[str, str]:
        lock: FencedLock | None = run.state.get(_LOCK)
        if lock is None or lock.token is None:
            return {}
        run.state[_HANDED_OFF] = True
        return {HANDOFF_HEADER: lock.token}

    # -- holding ---------------------------------------------------------------

    def _hold(self, run: Run, lock: FencedLock) -> None:
        run.state[_LOCK] = lock
        run.fencing_token = lock.fencing_token
        self.renewer.watch(lock, on_lost=lambda _lock: self._lock_lost(run, lock, when="while running"))
        if lock.lost_holder is not None:
            lost = _lost_run(lock, run, detected_at=self.clock())
            run.lost.append(lost)
            record_event(self.client, EventKind.RUN_LOST, lost.entry or lost.task_name, at=lost.detected_at,
                         task_id=lost.task_id, lock_key=lost.lock_key, fencing_token=lost.fencing_token,
                         started_at=lost.started_at, hostname=lost.hostname, detected_by=run.task_id)

    def _lock_lost(self, run: Run, lock: FencedLock, *, when: str) -> None:
        if run.state.get(_LOST_REPORTED):
            return  # the renewer already reported it; release then failed too
        run.state[_LOST_REPORTED] = True
        log.warning("task %s[%s] lost lock %s %s", run.task_name, run.task_id, lock.name, when)
        record_event(self.client, EventKind.OVERLAP_DETECTED, run.entry or run.task_name, action="lock_lost",
                     when=when, task_id=run.task_id, lock_key=lock.name, fencing_token=run.fencing_token)

    # -- waiting ---------------------------------------------------------------

    def _buffer(self, run: Run, lock: FencedLock, holder: dict[str, Any]) -> Skip | None:
        slot = Lock(self.client, lock.name + BUFFER_SUFFIX, timeout=run.policy.lock_ttl_s,
                    blocking=False, thread_local=False)
        if not slot.acquire(blocking=False):
            return self._skipped(run, holder, reason="the previous run holds the lock and one run already waits")
        self.renewer.watch(slot)  # a waiter that dies frees the slot within one TTL
        try:
            return self._wait_then_hold(run, lock, deadline=None, holder=holder,
                                        reason="the previous run still holds the lock")
        finally:
            self.renewer.unwatch(slot)
            try:
                slot.release()
            except LockError:
                pass

    def _wait_then_hold(self, run: Run, lock: FencedLock, *, deadline: float | None, holder: dict[str, Any],
                        reason: str, own_delivery_only: bool = False) -> Skip | None:
        """Poll until the lock is ours; give up at ``deadline``, at the run's ``expires``, or (for a
        redelivery) as soon as someone other than its own earlier delivery holds the lock."""
        while True:
            if run.expires_at is not None and self.clock() >= run.expires_at:
                return Skip(RunStatus.EXPIRED, reason=f"expired while waiting for lock {lock.name}")
            if deadline is not None and self.monotonic() >= deadline:
                return self._skipped(run, holder, reason=reason)
            self.sleep(self.poll_s)
            if lock.try_acquire():
                self._hold(run, lock)
                return None
            holder = lock.current_holder or holder
            if own_delivery_only and holder.get("task_id") != run.task_id:
                return self._skipped(run, holder, reason="a newer run took the lock first")

    def _skipped(self, run: Run, holder: Mapping[str, Any], *, reason: str) -> Skip:
        with self.client.pipeline(transaction=False) as pipe:
            record_event(pipe, EventKind.OVERLAP_DETECTED, run.entry or run.task_name, at=self.clock(),
                         action="skipped", task_id=run.task_id, lock_key=run.lock_key,
                         holder_task_id=holder.get("task_id"), reason=reason)
            pipe.hincrby(SKIPPED_COUNTS_KEY, run.task_name, 1)
            pipe.execute()
        return Skip(RunStatus.SKIPPED_OVERLAP, reason=f"{reason} ({run.lock_key})")


def skipped_counts(client: redis.Redis) -> dict[str, int]:
    """Runs skipped for overlap so far, per task name."""
    return {k: int(v)
            for k, v in client.hgetall(SKIPPED_COUNTS_KEY).items()}


def _holder_record(run: Run, *, locked_at: float) -> dict[str, Any]:
    return {"task": run.task_name, "task_id": run.task_id, "entry": run.entry, "retries": run.retries,
            "hostname": run.hostname, "pid": os.getpid(), "locked_at": locked_at}


def _lost_run(lock: FencedLock, run: Run, *, detected_at: float) -> LostRun:
    lost = lock.lost_holder or {}
    return LostRun(task_name=lost.get("task", run.task_name), task_id=lost.get("task_id", ""),
                   lock_key=lock.name, fencing_token=lost.get("fence"), started_at=lost.get("locked_at"),
                   hostname=lost.get("hostname", ""), entry=lost.get("entry", ""),
                   detected_at=detected_at, detected_by=run.task_id)

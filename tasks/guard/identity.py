"""Run identity: each scheduled instant executes once, however many times it is delivered.

A run's id is its schedule entry plus its scheduled fire instant in UTC (the headers beat
sends), e.g. ``feeds|2026-03-01T09:00:00+00:00``; a hand-triggered run's is its task id, so a
hand trigger always gets a fresh one. Before the body runs, the middleware *claims* the id in
Redis with one Lua call (``tasks.guard.claim.CLAIM_SCRIPT``) that reads and writes, atomically, a record
per run id and a lease (a ``tasks.locks.fenced.FencedLock`` renewed by the process's ``Renewer``):

- the id is new, or its last run failed: claimed, fencing token 1 (or the next one);
- a live lease holds it (a double-firing beat, a redelivery while the first still runs):
  the delivery is skipped as ``skipped_duplicate``; a second delivery of the *same message*
  (its worker died, the broker requeued it) first waits out the lease, which a dead holder
  stops renewing;
- the id already succeeded (or was skipped on purpose by pause/budget/overlap): skipped as
  ``skipped_duplicate``;
- the lease expired with no finish recorded: the holder's worker died. The run is claimed
  again with a higher fencing token and the death is counted; once deaths exceed the
  redelivery cap (default 3) the run is *dead-lettered* instead: it never executes again, a
  ``run_dead_lettered`` event is recorded for the monitor and the message is kept in
  :data:`DEAD_LETTERS_KEY` for a person to look at.

The end of the run records its state (one more Lua call): ``succeeded``, ``failed`` (another
delivery may run it again), ``retrying`` (only the task's own retry may claim it next) or
``skipped``. A scheduled run's record is kept ``retention_s`` (beyond the broker's visibility
timeout, the longest a redelivery can come later); a hand-triggered run's only minutes. The
execution history records every delivery's status, duplicates and dead letters included: it
is the record of what ran; the Redis claim is the gate.

The claim binds the run id to the entry: a message whose task is not the one beat stored for
its entry (redbeat's definition, read inside the claim script) is not that entry's run; it
runs as a hand run under its own task id. A message carrying a beat fence
(``headers.BEAT_FENCE``) below the newest beat's (``headers.BEAT_EPOCH_KEY``), for an instant
from that beat's takeover on, is skipped: the newer beat answers for it. Redis errors at the
claim are retried (``CLAIM_RETRY``); if Redis stays away the message is rejected with requeue,
so the broker delivers it again; the history records that delivery as ``retry``, not a failure.

The middleware sits outside overlap and inside history/metrics (``tasks.guard.task``), so a
duplicate neither takes the job lock nor spends budget, and is still recorded.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Callable

import redis
from celery.exceptions import Reject
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from monitoring.events import EventKind, record_event
from monitoring.history import HistoryStore
from monitoring.history_queries import succeeded_task_id
from tasks.locks.fenced import RENEWER, Renewer
from tasks.guard.middleware import Middleware
from monitoring.run_status import RunStatus
from tasks.guard.run import Outcome, Run, Skip
# The claim itself lives in tasks.guard.claim; its names are this module's public ones too.
from monitoring.metrics import DEAD_LETTERS_KEY  # list of JSON, newest first; owned there so the monitor counts it
from tasks.guard.claim import (RUN_KEY_PREFIX, ClaimRecord, ClaimState, EntryBinding, RunClaim,  # noqa: F401
                             claim_record, record_key, run_id_for, run_id_of)

log = logging.getLogger(__name__)

DEAD_LETTERS_MAX = 10_000
DEFAULT_MAX_REDELIVERIES = 3  # executions after the first whose worker died, before dead-lettering
DEFAULT_RETENTION_S = 3 * 3600.0
#: A hand-triggered run's id is its own task id: its record only has to outlive the duplicates
#: a broker reconnect causes (seconds), not a schedule's double fire, and hand triggers can be
#: many (fan-outs), so it is kept briefly.
HAND_RUN_RETENTION_S = 300.0
REDELIVERY_GRACE_S = 1.0  # beyond the lease's remaining TTL, for clock and poll slack
FINISH_RETRY_S = 30.0  # how long the end of a run is retried while Redis is unreachable
FINISH_RETRY_INTERVAL_S = 0.5
#: The claim through a Redis outage: redis-py's own retry and backoff (each try also makes
#: redis-py's per-command retries), about 30 s in all; then the message goes back to the queue.
CLAIM_RETRY_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError)
CLAIM_RETRY = Retry(ExponentialWithJitterBackoff(cap=4.0, base=0.25), retries=10, supported_errors=CLAIM_RETRY_ERRORS)
DEFAULT_ENTRY_KEY_PREFIX = "redbeat:"  # celeryconfig.redbeat_key_prefix's default

_CLAIM = "identity.claim"  # the run's RunClaim, in run.state


@dataclass(frozen=True)
class DeadLetter:
    """A run that was dead-lettered: enough to understand it and to send it again by hand."""

    run_id: str
    task: str
    task_id: str
    entry: str
    fire_at: str | None
    args: list[Any]
    kwargs: dict[str, Any]
    deaths: int
    max_redeliveries: int
    at: float  # unix seconds
    last_holder: dict[str, Any] | None


class RunIdentityMiddleware(Middleware):
    """Claims each run's id before its body; see the module docstring."""

    def __init__(self, client: redis.Redis, *, max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
                 retention_s: float = DEFAULT_RETENTION_S, renewer: Renewer = RENEWER,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.05,
                 succeeded_in_history: Callable[[str, datetime], str | None] | None = None,
                 entry_key_prefix: str = DEFAULT_ENTRY_KEY_PREFIX, claim_retry: Retry = CLAIM_RETRY):
        self.client = client
        self.entry_key_prefix = entry_key_prefix  # + entry name: the entry beat stored (redbeat's key)
        self.claim_retry = claim_retry
        self.succeeded_in_history = succeeded_in_history  # (entry, fire_at) -> task id of a success
        self.max_redeliveries = max_redeliveries
        self.retention_s = retention_s
        self.renewer = renewer
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.poll_s = poll_s

    def before_run(self, run: Run) -> Skip | None:
        run_id = run_id_of(run)
        claim = self._claim(run, run_id)
        if claim.verdict == "stale":
            newest, since = claim.stale_epoch
            return _duplicate(run, f"run {run_id} was sent by a stale beat (fence {run.beat_fence}): beat fence "
                                   f"{newest} holds the lock since {since:.3f} and answers for this instant",
                              store_result=True)
        if claim.verdict == "unbound":
            # Another task's message naming the entry: not the entry's run (it could otherwise take
            # the real dispatch's run id); it runs as what it is, a hand-sent message.
            log.warning("identity: %s[%s] names entry %r, whose task is %r: run as a hand run, not as %s",
                        run.task_name, run.task_id, run.entry, claim.entry_task or "?", run_id)
            run.entry, run.fire_at = "", None
            run_id = run_id_of(run)
            claim = self._claim(run, run_id)
        deadline: float | None = None
        while claim.verdict == "held":
            holder = claim.current_holder or {}
            if holder.get("task_id") != run.task_id:
                return _duplicate(run, f"run {run_id} is running as task {holder.get('task_id', '?')}",
                                  store_result=True)
            # The same message delivered again: its first delivery died (the lease lapses within
            # its TTL, nobody renews it) or still runs (it finishes, or keeps renewing).
            if deadline is None:
                deadline = self.monotonic() + (claim.remaining_ttl_s or 0.0) + REDELIVERY_GRACE_S
            if run.expires_at is not None and self.clock() >= run.expires_at:
                return Skip(RunStatus.EXPIRED, reason=f"expired while an earlier delivery held run {run_id}")
            if self.monotonic() >= deadline:
                return _duplicate(run, f"an earlier delivery of this message still runs {run_id}",
                                  store_result=False)
            self.sleep(self.poll_s)
            claim = self._claim(run, run_id)
        if claim.verdict == "done":
            if run.idempotent and claim.done_state is ClaimState.SUCCEEDED and claim.done_task_id == run.task_id:
                # Its worker died after the body, before the ack: what the body sends next (a
                # chain's next step) may never have left. An idempotent body repeats nothing.
                log.info("identity: %s[%s] delivered again after run %s succeeded; idempotent, so it runs",
                         run.task_name, run.task_id, run_id)
                return None
            return _duplicate(run, f"run {run_id} is {claim.done_state.value} already",
                              store_result=claim.done_task_id != run.task_id)
        if claim.verdict == "dead":
            return self._dead_letter(run, run_id, claim)
        succeeded_as = self._succeeded_as(run, claim)
        if succeeded_as is not None:
            self._finish(claim, ClaimState.SUCCEEDED)  # the record Redis lost, written again
            return _duplicate(run, f"run {run_id} succeeded already as task {succeeded_as} (the history says so; "
                                   "Redis had lost its record)", store_result=succeeded_as != run.task_id)
        self._hold(run, run_id, claim)
        return None

    def _succeeded_as(self, run: Run, claim: "RunClaim") -> str | None:
        """The history is the record of truth where Redis may have lost a run's record: a fresh
        record (fencing token 1) for a scheduled run that was delivered before, or older than
        records are kept. Then the task id of its success in the history, if any."""
        if self.succeeded_in_history is None or not (run.entry and run.fire_at) or claim.fencing_token != 1:
            return None
        if not run.redelivered and self.clock() - run.fire_at.timestamp() < self.retention_s:
            return None  # a first delivery of a recent instant: Redis's record is complete
        try:
            return self.succeeded_in_history(run.entry, run.fire_at)
        except Exception as exc:  # the database is down: Redis's word stands (its outage fails no run)
            log.warning("identity: cannot ask the history about run %s|%s (%r); running it", run.entry,
                        run.fire_at.isoformat(), exc)
            return None

    def after_run(self, run: Run, outcome: Outcome) -> None:
        claim: RunClaim | None = run.state.pop(_CLAIM, None)
        if claim is None:
            return
        self.renewer.unwatch(claim)
        # A delivery sent back before its body (Redis away in a later middleware) did not run: the
        # same message, delivered again, must be able to claim the run.
        state = ClaimState.FAILED if outcome.error_type == Reject.__name__ else _state_after(outcome.status)
        recorded = self._finish(claim, state)
        if recorded is False:
            log.warning("identity: run %s (%s[%s]) ended %s after a newer delivery claimed it", claim.run_id,
                        run.task_name, run.task_id, state.value)

    def _finish(self, claim: RunClaim, state: ClaimState) -> bool | None:
        # An end that never lands would look like a dead worker to the next delivery, which would
        # run the instant again: keep trying through a Redis outage, for a while.
        deadline = self.monotonic() + FINISH_RETRY_S
        while True:
            try:
                return claim.finish(state)
            except redis.RedisError as exc:
                if self.monotonic() >= deadline:
                    log.error("identity: could not record run %s as %s: %r", claim.run_id, state.value, exc)
                    return None
                self.sleep(FINISH_RETRY_INTERVAL_S)

    # -- claiming --------------------------------------------------------------

    def _claim(self, run: Run, run_id: str) -> RunClaim:
        holder = {"task": run.task_name, "task_id": run.task_id, "retries": run.retries, "hostname": run.hostname,
                  "pid": os.getpid(), "claimed_at": self.clock()}
        scheduled = bool(run.entry and run.fire_at)
        retention_s = self.retention_s if scheduled else min(self.retention_s, HAND_RUN_RETENTION_S)
        bound = None
        if scheduled:
            bound = EntryBinding(entry_key=self.entry_key_prefix + run.entry, task_name=run.task_name,
                                 beat_fence=_fence(run), fire_at_s=run.fire_at.timestamp())
        claim = RunClaim(self.client, run_id, ttl_s=run.policy.lock_ttl_s, holder=holder, task_id=run.task_id,
                         attempt=run.retries, max_redeliveries=self.max_redeliveries, retention_s=retention_s,
                         bound=bound)
        token = uuid.uuid4().hex  # one token for every try: a retried claim whose reply was lost is ours
        try:
            self.claim_retry.call_with_retry(lambda: claim.acquire(blocking=False, token=token),
                                             lambda exc: log.warning("identity: claiming run %s: %r; retrying",
                                                                     run_id, exc))
        except CLAIM_RETRY_ERRORS as exc:
            # Not the task's failure: nothing ran. The broker delivers the message again (late ack).
            log.error("identity: Redis unreachable while claiming run %s (%r): %s[%s] goes back to the queue",
                      run_id, exc, run.task_name, run.task_id)
            raise Reject(f"Redis unreachable while claiming run {run_id}: {exc!r}", requeue=True) from exc
        return claim

    def _hold(self, run: Run, run_id: str, claim: RunClaim) -> None:
        run.state[_CLAIM] = claim
        run.fencing_token = claim.fencing_token  # the job lock's token replaces it when overlap takes one
        self.renewer.watch(claim, on_lost=lambda _claim: log.warning(
            "identity: task %s[%s] lost its claim on run %s while running", run.task_name, run.task_id, run_id))
        if claim.lost_holder is not None:
            log.warning("identity: run %s: its delivery %s on %s died unfinished; running it again (death %d of "
                        "%d allowed, fencing token %s)", run_id, claim.lost_holder.get("task_id", "?"),
                        claim.lost_holder.get("hostname") or "?", claim.deaths, self.max_redeliveries,
                        claim.fencing_token)

    def _dead_letter(self, run: Run, run_id: str, claim: RunClaim) -> Skip:
        now = self.clock()
        letter = DeadLetter(run_id=run_id, task=run.task_name, task_id=run.task_id, entry=run.entry,
                            fire_at=run.fire_at.isoformat() if run.fire_at else None, args=list(run.args),
                            kwargs=dict(run.kwargs), deaths=claim.deaths, max_redeliveries=self.max_redeliveries,
                            at=now, last_holder=claim.lost_holder)
        log.error("identity: run %s (%s[%s]) dead-lettered: its worker died %d time(s) (redelivery cap %d)",
                  run_id, run.task_name, run.task_id, claim.deaths, self.max_redeliveries)
        with self.client.pipeline(transaction=False) as pipe:
            record_event(pipe, EventKind.RUN_DEAD_LETTERED, run.entry or run.task_name, at=now, run_id=run_id,
                         task=run.task_name, task_id=run.task_id, deaths=claim.deaths,
                         max_redeliveries=self.max_redeliveries, fire_at=letter.fire_at,
                         hostname=(claim.lost_holder or {}).get("hostname"))
            pipe.lpush(DEAD_LETTERS_KEY, json.dumps(asdict(letter), default=str, sort_keys=True))
            pipe.ltrim(DEAD_LETTERS_KEY, 0, DEAD_LETTERS_MAX - 1)
            pipe.execute()
        return Skip(RunStatus.DEAD_LETTERED, reason=f"run {run_id}: its worker died {claim.deaths} time(s), "
                                                    f"over the redelivery cap of {self.max_redeliveries}")


def identity_middleware_for(app: Any, client: redis.Redis,
                            history: Callable[[], HistoryStore] | None = None) -> RunIdentityMiddleware:
    """The app's run-identity middleware: records kept an hour past the broker's visibility timeout,
    the execution history (``history``, else the app's own) asked where Redis may have lost one."""
    history = history or (lambda: app.beatkeeper.history)

    visibility_s = float(app.conf.broker_transport_options.get("visibility_timeout", 3600))
    max_redeliveries = int(app.conf.get("beatkeeper_max_redeliveries") or DEFAULT_MAX_REDELIVERIES)
    return RunIdentityMiddleware(client, max_redeliveries=max_redeliveries,
                                 retention_s=max(DEFAULT_RETENTION_S, visibility_s + 3600),
                                 entry_key_prefix=app.conf.redbeat_key_prefix,
                                 succeeded_in_history=lambda entry, fire_at: succeeded_task_id(
                                     history().engine, entry=entry, fire_at=fire_at))


def dead_letters(client: redis.Redis, *, limit: int = 100) -> list[DeadLetter]:
    """The latest dead-lettered runs, newest first."""
    return [DeadLetter(**json.loads(raw)) for raw in client.lrange(DEAD_LETTERS_KEY, 0, limit - 1)]


def _fence(run: Run) -> int | None:
    """The sending beat's fencing token; a header that is not an integer counts as none."""
    if run.beat_fence is None:
        return None
    try:
        return int(run.beat_fence)
    except (TypeError, ValueError):
        log.warning("identity: %s[%s]: ignoring beat fence header %.40r (not an integer)", run.task_name,
                    run.task_id, run.beat_fence)
        return None


def _duplicate(run: Run, reason: str, *, store_result: bool) -> Skip:
    log.info("identity: %s[%s] skipped: %s", run.task_name, run.task_id, reason)
    return Skip(RunStatus.SKIPPED_DUPLICATE, reason=reason, store_result=store_result)


def _state_after(status: RunStatus) -> ClaimState:
    if status is RunStatus.SUCCESS:
        return ClaimState.SUCCEEDED
    if status is RunStatus.RETRY:
        return ClaimState.RETRYING
    if status is RunStatus.FAILURE:
        return ClaimState.FAILED
    return ClaimState.SKIPPED  # paused, over budget, overlapping, expired: decided, not to be re-run

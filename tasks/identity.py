"""Run identity: each scheduled instant executes once, however many times it is delivered.

A run's id is its schedule entry plus its scheduled fire instant in UTC (the headers beat
sends), e.g. ``feeds|2026-03-01T09:00:00+00:00``; a hand-triggered run's is its task id, so a
hand trigger always gets a fresh one. Before the body runs, the middleware *claims* the id in
Redis with one Lua call (:data:`CLAIM_SCRIPT`) that reads and writes, atomically, a record
per run id and a lease (a ``tasks.locks.FencedLock`` renewed by the process's ``Renewer``):

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

The middleware sits outside overlap and inside history/metrics (``tasks.guard``), so a
duplicate neither takes the job lock nor spends budget, and is still recorded.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Callable

import redis

from monitoring.events import record_event
from tasks.locks import RENEWER, FencedLock, Renewer
from tasks.middleware import Middleware
from tasks.run import Outcome, Run, RunStatus, Skip

log = logging.getLogger(__name__)

RUN_KEY_PREFIX = "beatkeeper:run:"  # + run id: the lease; + ":meta": the run's record (hash)
DEAD_LETTERS_KEY = "beatkeeper:dead_letters"  # list of JSON, newest first
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

_CLAIM = "identity.claim"  # the run's RunClaim, in run.state


class ClaimState(str, Enum):
    """The state a run id's record is in."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a later delivery may run it again
    RETRYING = "retrying"  # only the task's own retry (same task id, higher attempt) may claim it
    SKIPPED = "skipped"  # an inner middleware skipped it on purpose: final
    DEAD = "dead"  # dead-lettered: final


# KEYS[1] lease, KEYS[2] record. ARGV[1] token, ARGV[2] lease TTL ms, ARGV[3] holder JSON,
# ARGV[4] task id, ARGV[5] attempt (Celery retries), ARGV[6] max redeliveries, ARGV[7] retention s.
# -> {'claimed', fence, lost holder JSON or '', deaths} | {'held', holder JSON, lease pttl ms}
#  | {'done', state, task id} | {'dead', lost holder JSON, deaths}
CLAIM_SCRIPT = """
    local lease = redis.call('get', KEYS[1])
    if lease == ARGV[1] then
        -- our own claim, answered before: a call retried after its reply was lost
        return {'claimed', tonumber(redis.call('hget', KEYS[2], 'fence')), '',
                tonumber(redis.call('hget', KEYS[2], 'deaths') or '0')}
    end
    local state = redis.call('hget', KEYS[2], 'state')
    local owner = redis.call('hget', KEYS[2], 'task_id') or ''
    if state == 'succeeded' or state == 'skipped' or state == 'dead' then
        return {'done', state, owner}
    end
    if state == 'retrying' and (owner ~= ARGV[4]
            or tonumber(ARGV[5]) <= tonumber(redis.call('hget', KEYS[2], 'attempt') or '0')) then
        return {'done', state, owner}
    end
    if lease then
        return {'held', redis.call('hget', KEYS[2], 'holder') or '', redis.call('pttl', KEYS[1])}
    end
    local lost = ''
    if state == 'running' then
        lost = redis.call('hget', KEYS[2], 'holder') or ''
    end
    local deaths = tonumber(redis.call('hget', KEYS[2], 'deaths') or '0')
    if lost ~= '' then
        deaths = redis.call('hincrby', KEYS[2], 'deaths', 1)
    end
    if deaths > tonumber(ARGV[6]) then
        redis.call('hset', KEYS[2], 'state', 'dead', 'task_id', ARGV[4], 'attempt', ARGV[5])
        redis.call('hdel', KEYS[2], 'holder')
        redis.call('expire', KEYS[2], ARGV[7])
        return {'dead', lost, deaths}
    end
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
    local fence = redis.call('hincrby', KEYS[2], 'fence', 1)
    redis.call('hset', KEYS[2], 'state', 'running', 'holder', ARGV[3], 'task_id', ARGV[4], 'attempt', ARGV[5])
    redis.call('expire', KEYS[2], ARGV[7])
    return {'claimed', fence, lost, deaths}
"""

# KEYS[1] lease, KEYS[2] record. ARGV[1] token, ARGV[2] our fence, ARGV[3] final state,
# ARGV[4] retention s. -> 1 recorded, 0 a newer delivery claimed the run meanwhile (its record
# is left alone). A lease that lapsed under a run nobody claimed since still records its end.
FINISH_SCRIPT = """
    local fence = redis.call('hget', KEYS[2], 'fence')
    local state = redis.call('hget', KEYS[2], 'state')
    if redis.call('get', KEYS[1]) == ARGV[1] then
        redis.call('del', KEYS[1])
    elseif fence == ARGV[2] and state == ARGV[3] then
        return 1  -- recorded already: a call retried after its reply was lost
    elseif fence ~= ARGV[2] or state ~= 'running' then
        return 0
    end
    redis.call('hset', KEYS[2], 'state', ARGV[3])
    redis.call('hdel', KEYS[2], 'holder')
    redis.call('expire', KEYS[2], ARGV[4])
    return 1
"""


def run_id_for(*, entry: str, fire_at: datetime | None, task_id: str) -> str:
    """The identity of a run: ``entry|fire instant (UTC, ISO)``; a hand-triggered run's own task id."""
    if entry and fire_at is not None:
        moment = fire_at.replace(tzinfo=timezone.utc) if fire_at.tzinfo is None else fire_at.astimezone(timezone.utc)
        return f"{entry}|{moment.isoformat()}"
    return f"task:{task_id}"


def run_id_of(run: Run) -> str:
    return run_id_for(entry=run.entry, fire_at=run.fire_at, task_id=run.task_id)


@dataclass(frozen=True)
class ClaimRecord:
    """What Redis holds about one run id (see :func:`claim_record`)."""

    run_id: str
    state: ClaimState
    task_id: str  # the delivery that last claimed (or dead-lettered) it
    attempt: int
    fence: int  # fencing tokens handed out so far: the latest claim's
    deaths: int  # claims whose worker died before recording an end
    holder: dict[str, Any] | None  # the current claimant while running


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


class RunClaim(FencedLock):
    """The lease on one run id: a FencedLock whose acquire is the claim script.

    Renewal (``reacquire``) is redis-py's compare-and-pexpire, so the process's ``Renewer``
    keeps it alive while the body runs; a dead worker stops renewing and it lapses.
    """

    lua_acquire = None  # own class attributes: redis-py registers scripts per class
    lua_release = None
    lua_extend = None
    lua_reacquire = None
    lua_finish = None
    LUA_ACQUIRE_SCRIPT = CLAIM_SCRIPT

    def __init__(self, client: redis.Redis, run_id: str, *, ttl_s: float, holder: dict[str, Any],
                 task_id: str, attempt: int, max_redeliveries: int, retention_s: float):
        super().__init__(client, RUN_KEY_PREFIX + run_id, ttl_s=ttl_s, holder=holder)
        self.run_id = run_id
        self.task_id = task_id
        self.attempt = attempt
        self.max_redeliveries = max_redeliveries
        self.retention_s = retention_s
        self.verdict: str | None = None  # 'claimed' | 'held' | 'done' | 'dead', after try_acquire
        self.deaths = 0
        self.done_state: ClaimState | None = None
        self.done_task_id = ""

    def register_scripts(self) -> None:
        super().register_scripts()
        cls = self.__class__
        if cls.lua_finish is None:
            cls.lua_finish = self.redis.register_script(FINISH_SCRIPT)

    def do_acquire(self, token: bytes) -> bool:
        reply = self.lua_acquire(
            keys=[self.name, self.meta_key],
            args=[token, max(int(self.timeout * 1000), 1), self.holder_record, self.task_id, self.attempt,
                  self.max_redeliveries, max(int(self.retention_s), 1)],
            client=self.redis)
        verdict = self.verdict = _text(reply[0])
        if verdict == "claimed":
            self.fencing_token = int(reply[1])
            self.lost_holder = _record(reply[2])
            self.deaths = int(reply[3])
            return True
        if verdict == "held":
            self.current_holder = _record(reply[1]) or {}
            self.remaining_ttl_s = max(int(reply[2]), 0) / 1000
        elif verdict == "done":
            self.done_state = ClaimState(_text(reply[1]))
            self.done_task_id = _text(reply[2])
        else:  # dead
            self.lost_holder = _record(reply[1])
            self.deaths = int(reply[2])
        return False

    def finish(self, state: ClaimState) -> bool:
        """Record how the run ended and drop the lease; False if a newer delivery claimed it meanwhile."""
        token = self.local.token
        return bool(self.lua_finish(keys=[self.name, self.meta_key],
                                    args=[token or "", self.fencing_token or 0, state.value,
                                          max(int(self.retention_s), 1)],
                                    client=self.redis))


class RunIdentityMiddleware(Middleware):
    """Claims each run's id before its body; see the module docstring."""

    def __init__(self, client: redis.Redis, *, max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
                 retention_s: float = DEFAULT_RETENTION_S, renewer: Renewer = RENEWER,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.05):
        self.client = client
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
            return _duplicate(run, f"run {run_id} is {claim.done_state.value} already",
                              store_result=claim.done_task_id != run.task_id)
        if claim.verdict == "dead":
            return self._dead_letter(run, run_id, claim)
        self._hold(run, run_id, claim)
        return None

    def after_run(self, run: Run, outcome: Outcome) -> None:
        claim: RunClaim | None = run.state.pop(_CLAIM, None)
        if claim is None:
            return
        self.renewer.unwatch(claim)
        state = _state_after(outcome.status)
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
        retention_s = self.retention_s if run.entry and run.fire_at else min(self.retention_s, HAND_RUN_RETENTION_S)
        claim = RunClaim(self.client, run_id, ttl_s=run.policy.lock_ttl_s, holder=holder, task_id=run.task_id,
                         attempt=run.retries, max_redeliveries=self.max_redeliveries, retention_s=retention_s)
        claim.acquire(blocking=False, token=uuid.uuid4().hex)
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
            record_event(pipe, "run_dead_lettered", run.entry or run.task_name, at=now, run_id=run_id,
                         task=run.task_name, task_id=run.task_id, deaths=claim.deaths,
                         max_redeliveries=self.max_redeliveries, fire_at=letter.fire_at,
                         hostname=(claim.lost_holder or {}).get("hostname"))
            pipe.lpush(DEAD_LETTERS_KEY, json.dumps(asdict(letter), default=str, sort_keys=True))
            pipe.ltrim(DEAD_LETTERS_KEY, 0, DEAD_LETTERS_MAX - 1)
            pipe.execute()
        return Skip(RunStatus.DEAD_LETTERED, reason=f"run {run_id}: its worker died {claim.deaths} time(s), "
                                                    f"over the redelivery cap of {self.max_redeliveries}")


def identity_middleware_for(app: Any, client: redis.Redis) -> RunIdentityMiddleware:
    """The app's run-identity middleware: records kept an hour past the broker's visibility timeout."""
    visibility_s = float(app.conf.broker_transport_options.get("visibility_timeout", 3600))
    max_redeliveries = int(app.conf.get("beatkeeper_max_redeliveries") or DEFAULT_MAX_REDELIVERIES)
    return RunIdentityMiddleware(client, max_redeliveries=max_redeliveries,
                                 retention_s=max(DEFAULT_RETENTION_S, visibility_s + 3600))


def claim_record(client: redis.Redis, run_id: str) -> ClaimRecord | None:
    """What Redis holds about ``run_id``; None when it was never claimed (or its record expired)."""
    raw = {_text(k): _text(v) for k, v in client.hgetall(RUN_KEY_PREFIX + run_id + ":meta").items()}
    if "state" not in raw:
        return None
    return ClaimRecord(run_id=run_id, state=ClaimState(raw["state"]), task_id=raw.get("task_id", ""),
                       attempt=int(raw.get("attempt", 0)), fence=int(raw.get("fence", 0)),
                       deaths=int(raw.get("deaths", 0)), holder=_record(raw.get("holder")))


def dead_letters(client: redis.Redis, *, limit: int = 100) -> list[DeadLetter]:
    """The latest dead-lettered runs, newest first."""
    return [DeadLetter(**json.loads(raw)) for raw in client.lrange(DEAD_LETTERS_KEY, 0, limit - 1)]


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


def _record(raw: Any) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

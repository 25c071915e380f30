"""The claim on a run id, in Redis: the Lua scripts that claim and finish it atomically, the
record they keep (``ClaimRecord``) and the lease (``RunClaim``, a ``FencedLock``).
``tasks.guard.identity`` decides what a delivery does with the verdict.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from tasks.guard.run import Run
from tasks.headers import BEAT_EPOCH_KEY
from tasks.locks.fenced import FencedLock
from tasks.run_ids import RUN_KEY_PREFIX, ClaimState, record_key, run_id_for  # noqa: F401 (the claim's vocabulary)

# KEYS[1] lease, KEYS[2] record, KEYS[3] the entry's stored definition (redbeat's hash), KEYS[4] the
# beat epoch (tasks.headers.BEAT_EPOCH_KEY). ARGV[1] token, ARGV[2] lease TTL ms, ARGV[3] holder JSON,
# ARGV[4] task id, ARGV[5] attempt (Celery retries), ARGV[6] max redeliveries, ARGV[7] retention s,
# ARGV[8] the message's task name ('' for a hand run: no entry to bind), ARGV[9] the sending beat's
# fence ('' for none), ARGV[10] the fire instant (unix s, '' for none).
# -> {'claimed', fence, lost holder JSON or '', deaths} | {'held', holder JSON, lease pttl ms}
#  | {'done', state, task id} | {'dead', lost holder JSON, deaths}
#  | {'stale', newest fence, its since} | {'unbound', the task the stored entry names}
CLAIM_SCRIPT = """
    local lease = redis.call('get', KEYS[1])
    if lease == ARGV[1] then
        -- our own claim, answered before: a call retried after its reply was lost
        return {'claimed', tonumber(redis.call('hget', KEYS[2], 'fence')), '',
                tonumber(redis.call('hget', KEYS[2], 'deaths') or '0')}
    end
    if ARGV[9] ~= '' and ARGV[10] ~= '' then
        -- a newer beat took the lock at 'since' and answers for every instant from then on
        local epoch = redis.call('hmget', KEYS[4], 'fence', 'since')
        local newest, since = tonumber(epoch[1] or ''), tonumber(epoch[2] or '')
        if newest and since and tonumber(ARGV[9]) < newest and tonumber(ARGV[10]) >= since then
            return {'stale', tostring(newest), tostring(since)}
        end
    end
    if ARGV[8] ~= '' then
        -- the run id is the entry's only for the task beat stored for it; an entry beat never
        -- stored has no dispatch to protect
        local definition = redis.call('hget', KEYS[3], 'definition')
        if definition then
            local ok, decoded = pcall(cjson.decode, definition)
            local named = ok and type(decoded) == 'table' and decoded['task'] or ''
            if named ~= ARGV[8] then
                return {'unbound', tostring(named)}
            end
        end
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
class EntryBinding:
    """What ties a scheduled run's claim to its entry: the entry's stored definition (the claim is
    the entry's only if it names ``task_name``) and the fence of the beat that sent it."""

    entry_key: str  # redbeat's hash of the entry ('definition' holds its task)
    task_name: str  # the message's task
    beat_fence: int | None = None  # the BEAT_FENCE header; None: not sent by a fenced beat
    fire_at_s: float | None = None  # the fire instant (unix s)


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
                 task_id: str, attempt: int, max_redeliveries: int, retention_s: float,
                 bound: EntryBinding | None = None):
        super().__init__(client, RUN_KEY_PREFIX + run_id, ttl_s=ttl_s, holder=holder)
        self.bound = bound
        self.stale_epoch: tuple[int, float] | None = None  # (newest fence, since), verdict 'stale'
        self.entry_task = ""  # the task the stored entry names, verdict 'unbound'
        self.run_id = run_id
        self.task_id = task_id
        self.attempt = attempt
        self.max_redeliveries = max_redeliveries
        self.retention_s = retention_s
        self.verdict: str | None = None  # 'claimed' | 'held' | 'done' | 'dead' | 'stale' | 'unbound'
        self.deaths = 0
        self.done_state: ClaimState | None = None
        self.done_task_id = ""

    def register_scripts(self) -> None:
        super().register_scripts()
        cls = self.__class__
        if cls.lua_finish is None:
            cls.lua_finish = self.redis.register_script(FINISH_SCRIPT)

    def do_acquire(self, token: bytes) -> bool:
        bound = self.bound or EntryBinding(entry_key=self.name, task_name="")
        reply = self.lua_acquire(
            keys=[self.name, self.meta_key, bound.entry_key, BEAT_EPOCH_KEY],
            args=[token, max(int(self.timeout * 1000), 1), self.holder_record, self.task_id, self.attempt,
                  self.max_redeliveries, max(int(self.retention_s), 1), bound.task_name,
                  "" if bound.beat_fence is None else bound.beat_fence,
                  "" if bound.fire_at_s is None else repr(bound.fire_at_s)],
            client=self.redis)
        verdict = self.verdict = str(reply[0])
        if verdict == "stale":
            self.stale_epoch = (int(str(reply[1])), float(str(reply[2])))
            return False
        if verdict == "unbound":
            self.entry_task = str(reply[1])
            return False
        if verdict == "claimed":
            self.fencing_token = int(reply[1])
            self.lost_holder = _record(reply[2])
            self.deaths = int(reply[3])
            return True
        if verdict == "held":
            self.current_holder = _record(reply[1]) or {}
            self.remaining_ttl_s = max(int(reply[2]), 0) / 1000
        elif verdict == "done":
            self.done_state = ClaimState(str(reply[1]))
            self.done_task_id = str(reply[2])
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


def claim_record(client: redis.Redis, run_id: str) -> ClaimRecord | None:
    """What Redis holds about ``run_id``; None when it was never claimed (or its record expired)."""
    raw = {str(k): str(v) for k, v in client.hgetall(record_key(run_id)).items()}
    if "state" not in raw:
        return None
    return ClaimRecord(run_id=run_id, state=ClaimState(raw["state"]), task_id=raw.get("task_id", ""),
                       attempt=int(raw.get("attempt", 0)), fence=int(raw.get("fence", 0)),
                       deaths=int(raw.get("deaths", 0)), holder=_record(raw.get("holder")))


def _record(raw: Any) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


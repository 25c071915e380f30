"""What one beat tick reads, in one round trip: the beat lock renewed, the entries due (with
their stored definition and meta), the next score and the schedule's size.

One Lua call instead of three (renew, read the sorted set, load the entries): an idle tick is a
single round trip, and a tick never dispatches before it knows the lock was renewed, since the
answer to both comes together. The renewal is redbeat's "extend to" rule: the lock's TTL is
set to the lock timeout while our token holds it (the lock's whole life: ``tasks.beat.lock``).
(The entries' keys are read inside the script:
beat needs one Redis, not a Redis Cluster.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

DUE_READ_SCRIPT = """
local renewed = -1
if ARGV[2] ~= '' then
    renewed = 0
    if redis.call('get', KEYS[2]) == ARGV[2] and redis.call('pttl', KEYS[2]) >= 0 then
        redis.call('pexpire', KEYS[2], ARGV[3])
        renewed = 1
    end
end
local due = redis.call('zrangebyscore', KEYS[1], 0, ARGV[1])
local upcoming = redis.call('zrangebyscore', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local reply = {renewed, upcoming[2] or '', redis.call('zcard', KEYS[1]), redis.call('zcard', KEYS[3])}
for _, key in ipairs(due) do
    local fields = redis.call('hmget', key, 'definition', 'meta')
    reply[#reply + 1] = key
    reply[#reply + 1] = fields[1] or ''
    reply[#reply + 1] = fields[2] or ''
end
return reply
"""


@dataclass(frozen=True)
class DueRead:
    """A tick's reading of the schedule."""

    renewed: bool | None  # the beat lock was renewed; None: no lock to renew
    next_score: float | None  # unix time of the first entry due after now
    stored: int  # entries in the schedule's sorted set
    due: list[tuple[str, str, str | None]]  # (key, definition, meta) of each entry due by now
    dynamic: int = 0  # of which dynamic entries (``tasks.dynamic.entries``)


class DueReader:
    """Reads a schedule's due entries (``read``), renewing a lock on the way."""

    def __init__(self, client: redis.Redis):
        self.script = client.register_script(DUE_READ_SCRIPT)
        client.script_load(DUE_READ_SCRIPT)  # now, at start-up: the first tick is one round trip too

    def read(self, client: redis.Redis, *, schedule_key: str, now_ts: float, lock_key: str | None = None,
             token: str | bytes | None = None, lock_ttl_ms: int = 0, dynamic_key: str | None = None) -> DueRead:
        """``dynamic_key``: the sorted set naming the dynamic entries (their count is read too)."""
        renew = bool(lock_key and token)
        keys = [schedule_key, lock_key if renew else schedule_key, dynamic_key or schedule_key + ":none"]
        reply = self.script(keys=keys,
                            args=[repr(now_ts), token if renew else "", lock_ttl_ms], client=client)
        renewed, upcoming, stored, dynamic = int(reply[0]), str(reply[1]), int(reply[2]), int(reply[3])
        rest = reply[4:]
        due = [(str(rest[i]), str(rest[i + 1]), str(rest[i + 2]) or None) for i in range(0, len(rest), 3)]
        return DueRead(renewed=None if renewed < 0 else bool(renewed), next_score=float(upcoming) if upcoming else None,
                       stored=stored, dynamic=dynamic, due=due)


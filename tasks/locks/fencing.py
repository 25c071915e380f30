"""Fencing tokens: let a resource refuse a holder whose lock has already passed to someone else.

A lock can expire under a holder that is still alive (a long GC pause, a stalled VM, a network
partition longer than the TTL). The next holder then gets a higher fencing token. A write
that carries its token and is refused when a higher one was already seen cannot be applied
by the stale holder after the new one started.

The guarded task body finds its token as ``self.request.fencing_token`` (``bind=True``). ``fenced_set`` is the Redis write helper; for SQL
the same rule is one statement::

    UPDATE prices SET value = :v, fence = :token WHERE id = :id AND fence <= :token
    -- 0 rows updated: a newer holder already wrote; the stale one must stop.
"""
from __future__ import annotations

import redis

FENCE_SUFFIX = ":fence"  # beside each fenced value: the highest token that wrote it


class StaleFencingToken(Exception):
    """A write carried a token lower than one the resource has already accepted."""

    def __init__(self, resource: str, token: int, highest: int):
        super().__init__(f"{resource!r}: fencing token {token} is stale (highest seen {highest})")
        self.resource = resource
        self.token = token
        self.highest = highest


# KEYS[1] value, KEYS[2] its fence; ARGV[1] value, ARGV[2] token.
# -> 0 when written, else the highest token already seen. Equal tokens pass: one holder may
# write many times.
_FENCED_SET = """
    local highest = tonumber(redis.call('get', KEYS[2]) or '0')
    local token = tonumber(ARGV[2])
    if token < highest then
        return highest
    end
    redis.call('set', KEYS[2], token)
    redis.call('set', KEYS[1], ARGV[1])
    return 0
"""


def fenced_set(client: redis.Redis, key: str, value: str, *, fencing_token: int) -> None:
    """Set ``key`` to ``value`` unless a higher fencing token already wrote it (atomic, one round trip).

    Raises StaleFencingToken for a stale holder; the value is left untouched.
    """
    highest = int(client.eval(_FENCED_SET, 2, key, key + FENCE_SUFFIX, value, int(fencing_token)))
    if highest:
        raise StaleFencingToken(key, int(fencing_token), highest)


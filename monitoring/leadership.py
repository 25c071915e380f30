"""One monitor leads: of several monitor processes (for availability), only the holder of a
Redis lock evaluates the rules and sends alerts; the others stand by and take over when its
lease lapses. redis-py's ``Lock`` (token, TTL, compare-and-extend) is the lock; the lease is
renewed on every pass of the leader's loop, so a leader that dies or hangs is replaced
within one lease.
"""
from __future__ import annotations

import logging

import redis
from redis.exceptions import LockError

from monitoring.namespace import namespaced

log = logging.getLogger("beatkeeper.monitor")

LEADER_KEY = namespaced("beatkeeper:monitor:leader")


class Leadership:
    """Whether this monitor leads; :meth:`hold` is asked once per pass of its loop."""

    def __init__(self, client: redis.Redis, *, lease_s: float, key: str = LEADER_KEY):
        self.lock = client.lock(key, timeout=lease_s, blocking=False, thread_local=False)
        self.leading = False

    def hold(self) -> bool:
        """Take or renew the lead; True while this monitor leads."""
        try:
            if self.leading:
                try:
                    self.lock.reacquire()
                    return True
                except LockError:  # the lease lapsed (Redis away, restarted): take it again if free
                    self.leading = False
                    if not self.lock.acquire(blocking=False):
                        log.warning("monitor: another monitor leads now; standing by")
                        return False
            elif not self.lock.acquire(blocking=False):
                return False
            self.leading = True
            log.info("monitor: leading (lock %s)", self.lock.name)
        except redis.RedisError as exc:  # Redis away: keep the role (the leader alerts on the outage)
            log.warning("monitor: cannot renew the lead (%r); keeping the role %s", exc, self.role)
        return self.leading

    @property
    def role(self) -> str:
        return "leader" if self.leading else "standby"

    def release(self) -> None:
        """Hand the lead over at once (a clean stop)."""
        if self.leading:
            self.leading = False
            try:
                self.lock.release()
            except (LockError, redis.RedisError):
                pass  # lapsed or unreachable: the lease runs out by itself

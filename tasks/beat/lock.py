"""The beat lock's whole life, and the fencing epoch that goes with it.

Only the beat holding the lock dispatches; every other beat is a standby. The life of the lock:

- **acquire** (:meth:`BeatLock.try_acquire`): redis-py's ``Lock`` (as redbeat builds it), never
  blocking: a standby tries again at each tick, so a Redis error in an attempt leaves it a
  standby that keeps trying, never a leader without a lock. (redbeat's own ``beat_init`` receiver
  blocks in ``acquire`` and, when Redis errors, leaves beat ticking without any lock: Celery
  swallows the error. ``tasks.beat.scheduler`` disconnects it.)
- **fence**: each acquire bumps the fencing epoch (:data:`tasks.headers.BEAT_EPOCH_KEY`) in one
  script that first checks the lock is still ours, and keeps the new fence; every dispatch carries
  it (:data:`tasks.headers.BEAT_FENCE`), so a worker can refuse a stale leader's messages.
- **renew**: in the tick's own round trip (``tasks.beat.due_read``), before anything is dispatched.
- **retake**: a renewal that finds the lock gone (Redis was away longer than the lock timeout) is
  a fresh acquire, with a new fence; another beat holding it means the lock is lost.
- **lost**: :func:`exit_on_lost_lock` (``BeatkeeperScheduler.on_lock_lost``) exits at once with
  :data:`LOCK_LOST_EXIT_CODE` (a supervisor restarts beat, which then stands by).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable

import redis
from celery.signals import beat_init
from redbeat.schedulers import acquire_distributed_beat_lock

from tasks import headers

logger = logging.getLogger("beatkeeper.beat")

LOCK_LOST_EXIT_CODE = 3

# redbeat's receiver blocks in the lock's acquire at start and, when Redis errors meanwhile, Celery
# swallows the error and beat ticks with no lock at all. The scheduler takes the lock itself, at
# each tick, without blocking (:meth:`BeatLock.try_acquire`).
beat_init.disconnect(acquire_distributed_beat_lock)

# KEYS[1] the beat lock, KEYS[2] the epoch hash; ARGV[1] our lock token, ARGV[2] now (unix s).
# -> the new fence, or 0 when the lock is not ours (it lapsed between the acquire and this call).
FENCE_SCRIPT = """
    if redis.call('get', KEYS[1]) ~= ARGV[1] then
        return 0
    end
    local fence = redis.call('hincrby', KEYS[2], 'fence', 1)
    redis.call('hset', KEYS[2], 'since', ARGV[2])
    return fence
"""


class BeatLock:
    """The beat lock (a redis-py ``Lock``) and the fence this beat got with it."""

    def __init__(self, client: redis.Redis, name: str, *, timeout_s: float):
        self.lock = client.lock(name, timeout=timeout_s)
        self.timeout_s = timeout_s
        self.fence: int | None = None  # set while we hold the lock
        self._fence_script = client.register_script(FENCE_SCRIPT)

    @property
    def name(self) -> str:
        return self.lock.name

    @property
    def token(self) -> bytes | None:
        return self.lock.local.token

    @property
    def held(self) -> bool:
        """We took the lock and no renewal has found it gone since."""
        return self.fence is not None

    def try_acquire(self, clock_ts: Callable[[], float]) -> bool:
        """Take the lock if nobody holds it (no waiting), with a new fence; False if another beat holds it.

        ``since`` is read from ``clock_ts`` (unix s) once the lock is ours, not at the tick's start:
        the previous leader renewed before we could take it, so every instant it sent is older, and
        it recorded them; a ``since`` from before our acquire would have workers refuse its last
        sends that we, reading its records, never send again (lost instants).
        Redis errors propagate: the caller stays a standby and tries again later."""
        self.fence = None
        if not self.lock.acquire(blocking=False):
            return False
        since_ts = clock_ts()
        fence = int(self._fence_script(keys=[self.name, headers.BEAT_EPOCH_KEY], args=[self.token, repr(since_ts)]))
        if not fence:
            return False
        self.fence = fence
        logger.info("beat: Acquired lock %s (fence %d)", self.name, fence)  # redbeat's words, and the fence
        return True

    def renewal_failed(self, clock_ts: Callable[[], float]) -> bool:
        """The tick's renewal found the lock not ours: take it back if it merely expired with nobody
        taking it (Redis was away longer than the lock timeout). False when another beat holds it.
        SET NX: two beats can never both succeed."""
        if self.try_acquire(clock_ts):
            logger.warning("beat: the beat lock had expired unclaimed (Redis away for over %ss); took it back "
                           "(fence %d)", self.timeout_s, self.fence)
            return True
        return False

    def release(self) -> None:
        """Give the lock up (at shutdown), if it is still ours."""
        self.fence = None
        try:
            self.lock.release()
        except (redis.exceptions.LockError, redis.RedisError):
            pass  # not ours any more, or Redis is away: it expires by itself


def exit_on_lost_lock(exc: Exception) -> None:
    """Another beat owns the lock now: stop dispatching at once, exit non-zero (a standby restarts us)."""
    logger.critical("beat: lost the beat lock (%s); exiting so that only one beat dispatches", exc)
    logging.shutdown()
    os._exit(LOCK_LOST_EXIT_CODE)

"""Redis locks with fencing tokens, holder records and renewal.

A lock is (key, owner token, TTL): it is extended or released only while owned, atomically.
redis-py's ``Lock`` already does the token and the compare-and-delete/compare-and-extend Lua;
``FencedLock`` builds on it and adds, inside the same single-round-trip acquire script:

- a fencing token: a per-key counter incremented on every successful acquire, so the order
  of tokens is the order of holders and a stale holder can be refused by the resource;
- a holder record (who took it, when): a record still present when the next holder acquires
  means its owner never released it, so that run is known as lost.

Acquire is one round trip (script: SET NX PX + HINCRBY + HSET), release one (script:
compare-and-delete), renewal one every TTL/3 from a single renewal thread per process.

The tiny API: ``lock_held`` (a context manager yielding a Lease, truthy when acquired) and
``exclusive`` (a decorator on top of it that raises LockNotAcquired).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import redis
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock

log = logging.getLogger(__name__)

META_SUFFIX = ":meta"  # hash beside each lock: fence (counter), holder (JSON), holder_fence


class LockNotAcquired(Exception):
    """Another holder has the lock; carries the key and, when known, who holds it."""

    def __init__(self, key: str, holder: Mapping[str, Any] | None = None):
        super().__init__(f"lock {key!r} is held" + (f" by {dict(holder)!r}" if holder else ""))
        self.key = key
        self.holder = dict(holder) if holder else None


class FencedLock(Lock):
    """redis-py's Lock plus a fencing token and a holder record, never thread-local.

    Not thread-local because the renewal thread extends the lock the task thread took.
    """

    # Own class attributes: redis-py registers scripts per class, these differ from Lock's.
    lua_acquire = None
    lua_release = None
    lua_extend = None
    lua_reacquire = None

    # KEYS[1] lock, KEYS[2] meta; ARGV[1] token, ARGV[2] ttl ms, ARGV[3] holder JSON,
    # ARGV[4] handoff token ('' for none): a retry may take over its predecessor's lock.
    # -> {fence, lost holder JSON or false, its fence or false} | {0, holder JSON or false, pttl}
    LUA_ACQUIRE_SCRIPT = """
        local taken = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
        local handed_over = false
        if not taken then
            if ARGV[4] ~= '' and redis.call('get', KEYS[1]) == ARGV[4] then
                redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
                handed_over = true
            else
                return {0, redis.call('hget', KEYS[2], 'holder'), redis.call('pttl', KEYS[1])}
            end
        end
        local fence = redis.call('hincrby', KEYS[2], 'fence', 1)
        local lost = redis.call('hmget', KEYS[2], 'holder', 'holder_fence')
        redis.call('hset', KEYS[2], 'holder', ARGV[3], 'holder_fence', fence)
        if handed_over then
            return {fence, false, false}
        end
        return {fence, lost[1], lost[2]}
    """

    # KEYS[1] lock, KEYS[2] meta; ARGV[1] token. A clean release also clears the holder record.
    LUA_RELEASE_SCRIPT = """
        if redis.call('get', KEYS[1]) ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        redis.call('hdel', KEYS[2], 'holder', 'holder_fence')
        return 1
    """

    def __init__(self, client: redis.Redis, key: str, *, ttl_s: float,
                 holder: Mapping[str, Any] | None = None):
        super().__init__(client, key, timeout=ttl_s, blocking=False, thread_local=False)
        self.meta_key = key + META_SUFFIX
        self.holder_record = json.dumps(dict(holder or {}), default=str, sort_keys=True)
        self.handoff_token: str = ""
        self.fencing_token: int | None = None  # ours, once acquired
        self.lost_holder: dict[str, Any] | None = None  # a predecessor that never released
        self.current_holder: dict[str, Any] | None = None  # who holds it, after a failed try
        self.remaining_ttl_s: float | None = None  # the holder's TTL left, after a failed try

    def register_scripts(self) -> None:
        super().register_scripts()
        cls = self.__class__
        if cls.lua_acquire is None:
            cls.lua_acquire = self.redis.register_script(cls.LUA_ACQUIRE_SCRIPT)

    def try_acquire(self, *, handoff_token: str | None = None) -> bool:
        """One attempt, never blocking; ``handoff_token`` lets a retry take over its predecessor's lock."""
        self.handoff_token = handoff_token or ""
        return self.acquire(blocking=False, token=uuid.uuid4().hex)

    def do_acquire(self, token: bytes) -> bool:
        fence, holder, extra = self.lua_acquire(
            keys=[self.name, self.meta_key],
            args=[token, int(self.timeout * 1000), self.holder_record, self.handoff_token],
            client=self.redis)
        fence = int(fence)
        if fence == 0:
            self.current_holder = _record(holder)
            self.remaining_ttl_s = max(int(extra), 0) / 1000
            return False
        self.fencing_token = fence
        self.lost_holder = _record(holder)
        if self.lost_holder is not None and extra:
            self.lost_holder["fence"] = int(extra)
        return True

    def do_release(self, expected_token: bytes) -> None:
        if not self.lua_release(keys=[self.name, self.meta_key], args=[expected_token], client=self.redis):
            raise LockNotOwnedError("Cannot release a lock that's no longer owned", lock_name=self.name)

    @property
    def token(self) -> str | None:
        """The owner token while held (a retry's message carries it for the handoff)."""
        raw = self.local.token  # redis-py keeps its own token as bytes, whatever the client decodes
        return raw.decode() if isinstance(raw, bytes) else raw


def _record(raw: Any) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


class Renewer:
    """One daemon thread per process resetting each watched lock's TTL every TTL/3.

    A healthy long run keeps its lock; a dead process stops renewing, so its lock lingers
    at most one TTL. A failed renewal (the lock expired or was taken) calls ``on_lost``.
    """

    IDLE_WAKE_S = 1.0  # the thread looks at least this often, so most watches need not wake it

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._due: dict[Lock, tuple[float, Callable[[Lock], None] | None]] = {}
        self._cond = threading.Condition()
        self._pid: int | None = None
        self._wakes_at = float("inf")  # when the thread will next look at the due times

    def watch(self, lock: Lock, *, on_lost: Callable[[Lock], None] | None = None) -> None:
        due_at = self.clock() + lock.timeout / 3
        with self._cond:
            self._ensure_thread()
            self._due[lock] = (due_at, on_lost)
            # Waking the thread costs a context switch per run; only a lock due before the
            # thread's next look needs it (a TTL under 3 x IDLE_WAKE_S).
            if due_at < self._wakes_at:
                self._cond.notify()

    def unwatch(self, lock: Lock) -> None:
        with self._cond:
            self._due.pop(lock, None)

    def watching(self, lock: Lock) -> bool:
        with self._cond:
            return lock in self._due

    def _ensure_thread(self) -> None:
        # A forked child (prefork pool) inherits the dict but not the thread: start its own.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._due = {}
            self._wakes_at = float("inf")
            threading.Thread(target=self._loop, name="beatkeeper-lock-renewer", daemon=True).start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                now = self.clock()
                due = [lock for lock, (at, _) in self._due.items() if at <= now]
                if not due:
                    self._wakes_at = min([at for at, _ in self._due.values()] + [now + self.IDLE_WAKE_S])
                    self._cond.wait(timeout=max(self._wakes_at - now, 0.001))
                    self._wakes_at = float("-inf")  # looking now: a watch meanwhile needs no notify
                    continue
            for lock in due:
                self._renew(lock)

    def _renew(self, lock: Lock) -> None:
        try:
            lock.reacquire()
        except (LockNotOwnedError, LockError):
            with self._cond:
                entry = self._due.pop(lock, None)
            if entry and entry[1]:  # still watched: a real loss, not a race with release
                entry[1](lock)
            return
        except redis.RedisError as exc:
            # Redis unreachable: keep trying sooner; the lock survives 2/3 of a TTL without us.
            log.warning("renewing lock %s failed: %r", lock.name, exc)
            next_at = self.clock() + lock.timeout / 10
        else:
            next_at = self.clock() + lock.timeout / 3
        with self._cond:
            if lock in self._due:
                self._due[lock] = (next_at, self._due[lock][1])


#: The process's renewer; tests may build their own.
RENEWER = Renewer()


@dataclass
class Lease:
    """What ``lock_held`` yields: truthy when the lock was acquired."""

    key: str
    acquired: bool
    fencing_token: int | None = None
    lost_holder: dict[str, Any] | None = None  # the previous holder that never released
    holder: dict[str, Any] | None = None  # who holds it, when not acquired
    lost: bool = False  # set if renewal found the lock gone while held

    def __bool__(self) -> bool:
        return self.acquired


@contextmanager
def lock_held(client: redis.Redis, key: str, *, ttl_s: float, holder: Mapping[str, Any] | None = None,
              renew: bool = True, renewer: Renewer | None = None) -> Iterator[Lease]:
    """Try the lock once; yield a Lease (falsy if another holds it); release on exit if held."""
    lock = FencedLock(client, key, ttl_s=ttl_s, holder=holder)
    if not lock.try_acquire():
        yield Lease(key=key, acquired=False, holder=lock.current_holder)
        return
    lease = Lease(key=key, acquired=True, fencing_token=lock.fencing_token, lost_holder=lock.lost_holder)
    renewer = renewer or RENEWER
    if renew:
        renewer.watch(lock, on_lost=lambda _lock: setattr(lease, "lost", True))
    try:
        yield lease
    finally:
        renewer.unwatch(lock)
        try:
            lock.release()
        except LockNotOwnedError:
            lease.lost = True
            log.warning("lock %s expired before its holder released it", key)


def exclusive(key: str | Callable[..., str], *, client: redis.Redis | Callable[[], redis.Redis],
              ttl_s: float) -> Callable:
    """Decorate a function so it runs only while holding ``key`` (a string, or built from its arguments).

    Raises LockNotAcquired when another holder has it. ``client`` may be a factory, so the
    decorator can sit at module level before settings are loaded.
    """
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            lock_key = key(*args, **kwargs) if callable(key) else key
            conn = client if isinstance(client, redis.Redis) else client()
            with lock_held(conn, lock_key, ttl_s=ttl_s) as lease:
                if not lease:
                    raise LockNotAcquired(lock_key, lease.holder)
                return fn(*args, **kwargs)
        return wrapper
    return decorate

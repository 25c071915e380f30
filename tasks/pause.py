"""Pause a schedule entry or a task at call time, without restarting anything.

A pause is one field of a Redis hash (``beatkeeper:pauses``): name -> JSON with the reason,
who paused it, when, and until when (optional). The name is either an entry's or a task's:
a run is paused when its entry *or* its task is. The worker checks the hash before every
run (one ``HMGET``), so ``beatkeeper pause`` takes effect on the very next run and
``beatkeeper resume`` likewise. A pause with ``until`` simply stops matching at that instant;
expired fields are removed the next time pauses are listed.

A paused run does no work: it ends as ``skipped_paused`` (recorded by history and metrics).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import redis

from tasks.middleware import Middleware
from tasks.run import Run, RunStatus, Skip

PAUSES_KEY = "beatkeeper:pauses"

# KEYS[1] pauses; ARGV[1] name, ARGV[2] the exact JSON read: delete only what was read, so a
# pause set again in between (a new until) survives the cleanup.
_DELETE_IF_UNCHANGED = """
    if redis.call('hget', KEYS[1], ARGV[1]) == ARGV[2] then
        return redis.call('hdel', KEYS[1], ARGV[1])
    end
    return 0
"""


class PauseUntilInPast(ValueError):
    """A pause whose ``until`` is not after now; carries both instants (unix seconds)."""

    def __init__(self, name: str, until: float, now: float):
        super().__init__(f"cannot pause {name!r} until {until}: that is not after now ({now})")
        self.name = name
        self.until = until
        self.now = now


@dataclass(frozen=True)
class Pause:
    """One pause: ``until`` None means until resumed."""

    name: str  # an entry or a task name
    paused_at: float  # unix seconds
    until: float | None = None  # unix seconds
    reason: str = ""
    by: str = ""  # who paused it (user@host for the CLI)

    def active_at(self, now: float) -> bool:
        return self.until is None or now < self.until

    def describe(self) -> str:
        until = "until resumed" if self.until is None else f"until {_iso(self.until)}"
        why = f": {self.reason}" if self.reason else ""
        by = f" by {self.by}" if self.by else ""
        return f"{self.name} paused{by} {until}{why}"


class PauseStore:
    """The pause flags in Redis."""

    def __init__(self, client: redis.Redis, *, key: str = PAUSES_KEY):
        self.client = client
        self.key = key

    def pause(self, name: str, *, now: float, until: float | None = None, reason: str = "", by: str = "") -> Pause:
        """Pause ``name`` (replacing an earlier pause of it). Raises PauseUntilInPast."""
        if until is not None and until <= now:
            raise PauseUntilInPast(name, until, now)
        pause = Pause(name=name, paused_at=now, until=until, reason=reason, by=by)
        self.client.hset(self.key, name, json.dumps(asdict(pause), sort_keys=True))
        return pause

    def resume(self, name: str) -> bool:
        """Lift the pause of ``name``; False if it was not paused."""
        return bool(self.client.hdel(self.key, name))

    def active_pause(self, names: Iterable[str], *, now: float) -> Pause | None:
        """The first of ``names`` paused at ``now``, or None. One round trip."""
        wanted = [n for n in names if n]
        if not wanted:
            return None
        for raw in self.client.hmget(self.key, wanted):
            if raw:
                pause = _decode(raw)
                if pause.active_at(now):
                    return pause
        return None

    def list_pauses(self, *, now: float) -> list[Pause]:
        """Every pause in force at ``now``, by name; pauses that expired are deleted."""
        active = []
        for name, raw in sorted(self.client.hgetall(self.key).items()):
            pause = _decode(raw)
            if pause.active_at(now):
                active.append(pause)
            else:
                self.client.eval(_DELETE_IF_UNCHANGED, 1, self.key, _text(name), _text(raw))
        return active


def _decode(raw: str | bytes) -> Pause:
    return Pause(**json.loads(raw))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _iso(unix_s: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(unix_s, timezone.utc).isoformat(timespec="seconds")


class PauseMiddleware(Middleware):
    """Skips a run whose entry or task is paused (``skipped_paused``); the body never starts."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time):
        self.store = PauseStore(client)
        self.clock = clock

    def before_run(self, run: Run) -> Skip | None:
        pause = self.store.active_pause((run.entry, run.task_name), now=self.clock())
        if pause is None:
            return None
        return Skip(RunStatus.SKIPPED_PAUSED, reason=pause.describe())

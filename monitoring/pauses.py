"""Pauses of schedule entries and tasks: what ``beatkeeper pause`` writes, the worker obeys
(``tasks.guard.pause``) and the monitor reads (a paused entry raises no missed-run or heartbeat alert).

A pause is one field of a Redis hash (``beatkeeper:pauses``): name -> JSON with the reason,
who paused it, when, and until when (optional). The name is either an entry's or a task's:
a run is paused when its entry *or* its task is. The worker checks the hash before every
run (one ``HMGET``), so ``beatkeeper pause`` takes effect on the very next run and
``beatkeeper resume`` likewise. A pause with ``until`` simply stops matching at that instant;
expired fields are removed the next time pauses are listed.

A paused run does no work: it ends as ``skipped_paused`` (recorded by history and metrics).
When a pause ends (resumed, or its ``until`` passed) its span is kept in ``beatkeeper:pauses:ended``
(name -> JSON {paused_at, ended_at}, the latest per name), so the monitor judges nothing inside
it and counts a heartbeat's age from its end, not from the last beat before it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Iterable

import redis

from monitoring.namespace import namespaced

PAUSES_KEY = namespaced("beatkeeper:pauses")
ENDED_KEY = namespaced("beatkeeper:pauses:ended")  # hash: name -> JSON {paused_at, ended_at} of its latest ended pause

# KEYS[1] pauses, KEYS[2] ended; ARGV[1] name, ARGV[2] the exact JSON read, ARGV[3] the ended
# record: delete only what was read, so a pause set again in between (a new until) survives.
_END_IF_UNCHANGED = """
    if redis.call('hget', KEYS[1], ARGV[1]) == ARGV[2] then
        redis.call('hset', KEYS[2], ARGV[1], ARGV[3])
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

    def __init__(self, client: redis.Redis, *, key: str = PAUSES_KEY, ended_key: str = ENDED_KEY):
        self.client = client
        self.key = key
        self.ended_key = ended_key
        self._end = client.register_script(_END_IF_UNCHANGED)

    def pause(self, name: str, *, now: float, until: float | None = None, reason: str = "", by: str = "") -> Pause:
        """Pause ``name`` (replacing an earlier pause of it). Raises PauseUntilInPast."""
        if until is not None and until <= now:
            raise PauseUntilInPast(name, until, now)
        pause = Pause(name=name, paused_at=now, until=until, reason=reason, by=by)
        self.client.hset(self.key, name, json.dumps(asdict(pause), sort_keys=True))
        return pause

    def resume(self, name: str, *, now: float | None = None) -> bool:
        """Lift the pause of ``name``; False if it was not paused."""
        raw = self.client.hget(self.key, name)
        if raw is None:
            return False
        pause = _decode(raw)
        ended_at = time.time() if now is None else now
        if pause.until is not None:
            ended_at = min(ended_at, pause.until)
        return bool(self._end(keys=[self.key, self.ended_key], args=[name, raw, _span(pause, ended_at)]))

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
                self._end(keys=[self.key, self.ended_key], args=[name, raw, _span(pause, pause.until)])
        return active

    def spans(self, *, now: float) -> dict[str, list[PauseSpan]]:
        """Per name, the spans of its pause in force at ``now`` (ending at ``now``) and of its latest
        ended pause. Read only (the monitor's view): two HGETALLs in one round trip."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.key)
            pipe.hgetall(self.ended_key)
            current, ended = pipe.execute()
        spans: dict[str, list[PauseSpan]] = {}
        for name, raw in ended.items():
            span = json.loads(raw)
            spans.setdefault(name, []).append(PauseSpan(float(span["paused_at"]), float(span["ended_at"])))
        for name, raw in current.items():
            pause = _decode(raw)
            if pause.active_at(now):
                spans.setdefault(name, []).append(PauseSpan(pause.paused_at, now, pause=pause))
            elif pause.until is not None:  # its until passed, not yet cleaned up
                spans.setdefault(name, []).append(PauseSpan(pause.paused_at, pause.until))
        return spans


@dataclass(frozen=True)
class PauseSpan:
    """When a name was paused: ``start`` to ``end`` (unix seconds); ``pause`` is set while it lasts."""

    start: float
    end: float
    pause: Pause | None = None

    def covers(self, instant: float) -> bool:
        return self.start <= instant <= self.end


def _span(pause: Pause, ended_at: float) -> str:
    return json.dumps({"paused_at": pause.paused_at, "ended_at": ended_at})


def _decode(raw: str | bytes) -> Pause:
    return Pause(**json.loads(raw))



def _iso(unix_s: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(unix_s, timezone.utc).isoformat(timespec="seconds")

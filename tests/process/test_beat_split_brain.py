"""Two beats and a Redis restart: exactly one of them dispatches afterwards (issue 13's split brain).

redbeat's standby waits for the lock in a blocking acquire at start; Redis going away made that
acquire raise, Celery swallowed the error and the standby ticked with no lock at all, dispatching
every instant the leader dispatched too. Real redis-server (append-only, restarted on its port),
real beat processes; each beat's dispatches are counted from its own log.
"""
from __future__ import annotations

import re
import signal
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from tests.process.test_beat_faults import platform_env, start_beat, ticking
from tests.servers import RedisServer, free_port, stop_process_tree, wait_until

pytestmark = pytest.mark.process

LOOP_INTERVAL_S = 0.5  # a tick every half second: 60 ticks in WATCHED_S
WATCHED_S = 30.0  # seconds of ticks watched after the restart
DOWN_S = 2.0  # seconds Redis is away
ENTRIES = 4  # each every second
SENT = re.compile(r"beat: sent (\S+) \(\S+\) for (\S+)")


def dispatches(log_path: Path) -> list[tuple[str, datetime]]:
    """(entry, instant) of every dispatch a beat logged."""
    return [(m.group(1), datetime.fromisoformat(m.group(2))) for m in SENT.finditer(log_path.read_text())]


def restart_redis(server: RedisServer, *, down_s: float) -> datetime:
    """SIGKILL the server, keep it away ``down_s``, start it again on its port; when it is back."""
    server.kill(signal.SIGKILL)
    down_at = time.monotonic()
    wait_until(lambda: time.monotonic() - down_at >= down_s, timeout_s=down_s + 5, interval_s=0.05,
               what="the outage")
    server.start()
    return datetime.now(timezone.utc)


def test_after_a_redis_restart_exactly_one_of_two_beats_dispatches(processes, tmp_path):
    server = RedisServer(tmp_path / "redis", port=free_port(), appendonly=True,
                         extra_args=("--appendfsync", "always")).start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        env = {**platform_env(tmp_path, ticking(ENTRIES), redis_url=server.url),
               "BEATKEEPER_LOOP_INTERVAL": str(LOOP_INTERVAL_S)}
        leader = start_beat(processes, env, "beat-a")
        wait_until(lambda: dispatches(leader.log_path), timeout_s=60, what="the leader's first dispatch")
        standby = start_beat(processes, env, "beat-b")
        started = time.monotonic()
        wait_until(lambda: time.monotonic() - started >= 3, timeout_s=10, what="the standby to wait for the lock")
        assert dispatches(standby.log_path) == []

        back_at = restart_redis(server, down_s=DOWN_S)
        wait_until(lambda: datetime.now(timezone.utc) >= back_at + timedelta(seconds=WATCHED_S),
                   timeout_s=WATCHED_S + 10, interval_s=0.2, what=f"{WATCHED_S:.0f} s of ticks")
        alive = {name: proc.poll() is None for name, proc in (("beat-a", leader), ("beat-b", standby))}
        for proc in (leader, standby):
            stop_process_tree(proc)

        after = {name: [(e, t) for e, t in dispatches(proc.log_path) if t >= back_at]
                 for name, proc in (("beat-a", leader), ("beat-b", standby))}
        counts = {name: len(sent) for name, sent in after.items()}
        print(f"dispatches after the restart by beat: {counts}; alive at the end: {alive}")
        assert [name for name, sent in after.items() if sent] in (["beat-a"], ["beat-b"]), counts
        everything = dispatches(leader.log_path) + dispatches(standby.log_path)
        doubled = [key for key, n in Counter(everything).items() if n > 1]
        assert not doubled, f"{len(doubled)} instants dispatched twice, e.g. {doubled[:3]}"
        # and dispatching went on: every entry, about every second of the watched span
        assert sum(counts.values()) >= ENTRIES * (WATCHED_S - 5)
    finally:
        client.close()
        server.kill()

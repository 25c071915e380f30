"""Chaos in the spirit of issue 13: two beats, two prefork workers, the leading beat SIGKILLed, a
worker SIGSTOPped, a pool process SIGKILLed mid-run, Redis restarted twice (the second time while
both beats are up). Two ledgers decide:

- executions, counted by the task bodies (``tests.tasks.beat.ledger_tasks``): no instant ran twice, and
  every due instant that did not run is one its entry's catch-up policy gave up (``missed_runs``),
  one its overlap policy skipped (``overlap: skip`` while a stopped worker held the run's lock), or
  one a crashed worker holds unacknowledged (the broker redelivers it after its visibility timeout);
- dispatches, from the beats' own logs (each dispatch names its beat's lock fence, each acquire
  the fence it got): no instant was dispatched twice, and no beat dispatched under a fence older
  than one another acquire had already handed out (a beat not holding the lock).
"""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis

from tasks import headers
from tasks.guard.claim import ClaimState, claim_record, run_id_for
from tests.tasks.beat import ledger_tasks as lt
from tests.process.test_beat_faults import (executed, missed_instants, platform_env, start_beat, wait_drained,
                                            START_TIMEOUT_S)
from tests.process.test_beat_split_brain import restart_redis
from tests.servers import RedisServer, free_port, stop_process_tree, wait_until

pytestmark = pytest.mark.process

REDIS_DOWN_S = 2.0
LOCK_TIMEOUT_S = 10  # a failover gap longer than the on-time window: the catch-up policies decide it
WORKER_STOPPED_S = 10.0
RUN_ON_S = 15.0  # seconds of ticks after the last fault
SCHEDULE = {
    "skip-1s": {"task": lt.record.name, "every": 1, "catchup": "skip"},
    "latest-1s": {"task": lt.record.name, "every": 1, "catchup": "latest"},
    "all-1s": {"task": lt.record.name, "every": 1, "catchup": "all", "catchup_max": 100},
    "all-skip-2s": {"task": lt.record.name, "every": 2, "kwargs": {"hold_s": 0.2}, "catchup": "all",
                    "catchup_max": 100, "overlap": "skip"},
    "slow-3s": {"task": lt.record.name, "every": 3, "kwargs": {"hold_s": 1.0}, "catchup": "all", "catchup_max": 100},
    "effect-3s": {"task": lt.side_effect.name, "every": 3, "args": ["chaos"], "catchup": "latest"},
}
_STAMP = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): [^\]]*\] "
SENT = re.compile(_STAMP + r"beat: sent (\S+) \(\S+\) for (\S+)(?: \(fence (\d+)\))?$", re.M)
ACQUIRED = re.compile(_STAMP + r"beat: Acquired lock \S+ \(fence (\d+)\)", re.M)


@dataclass(frozen=True)
class Sent:
    at: str  # the log's timestamp (one clock for every process)
    beat: str
    fence: int
    entry: str
    instant: datetime


def read_beat_logs(beats: dict[str, Path]) -> tuple[list[Sent], list[tuple[str, str, int]]]:
    """Every dispatch and every lock acquire (at, beat, fence) the beats logged."""
    sent, acquired = [], []
    for beat, path in beats.items():
        text = path.read_text()
        sent += [Sent(at, beat, int(f or 0), e, datetime.fromisoformat(t)) for at, e, t, f in SENT.findall(text)]
        acquired += [(at, beat, int(f)) for at, f in ACQUIRED.findall(text)]
    return sent, acquired


def unacked_instants(client) -> set[tuple[str, datetime]]:
    """(entry, instant) of the messages the broker holds as delivered, not acknowledged."""
    held = set()
    for raw in client.hvals("unacked"):
        message_headers = json.loads(raw)[0].get("headers") or {}
        if message_headers.get(headers.ENTRY) and message_headers.get(headers.FIRE_AT):
            held.add((message_headers[headers.ENTRY], datetime.fromisoformat(message_headers[headers.FIRE_AT])))
    return held


def spawn_worker(processes, env: dict, name: str):
    return processes.celery("worker", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
                            "--without-heartbeat", "--loglevel", "INFO", "-P", "prefork", "-c", "2", "-Q", "default",
                            name=name, env=env)


class Supervisor:
    """Restarts a worker that exited, as the platform's supervisor does (compose ``restart:
    unless-stopped``), and keeps what each exit logged last: a worker crash is a finding reported
    with the figures, not a lost run, as long as the ledger holds."""

    def __init__(self, processes, env: dict, names: list[str]):
        self.spawn = lambda name: spawn_worker(processes, env, name)
        self.current = {name: self.spawn(name) for name in names}
        self.crashes: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for name, proc in list(self.current.items()):
                if proc.poll() is not None:
                    last = [line for line in Path(proc.log_path).read_text().splitlines() if "CRITICAL" in line]
                    self.crashes.append(f"{name} exited {proc.returncode}: {last[-1:] or 'no critical line'}")
                    self.current[name] = self.spawn(f"{name}-{len(self.crashes)}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _ready(proc) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"{proc.args} exited {proc.returncode}:\n{Path(proc.log_path).read_text()[-3000:]}")
    return b" ready." in Path(proc.log_path).read_bytes()


def _after(seconds: float) -> None:
    began = time.monotonic()
    wait_until(lambda: time.monotonic() - began >= seconds, timeout_s=seconds + 5, interval_s=0.05,
               what=f"{seconds:.0f} s to pass")


def test_chaos_no_run_twice_no_dispatch_without_the_lock_every_gap_by_policy(processes, tmp_path):
    started = time.monotonic()
    server = RedisServer(tmp_path / "redis", port=free_port(), appendonly=True,
                         extra_args=("--appendfsync", "always")).start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        env = platform_env(tmp_path, SCHEDULE, redis_url=server.url, lock_timeout_s=LOCK_TIMEOUT_S)
        workers = Supervisor(processes, env, ["w1", "w2"])
        wait_until(lambda: all(_ready(w) for w in workers.current.values()), timeout_s=START_TIMEOUT_S,
                   what="both workers ready")
        workers.start()
        beat_a = start_beat(processes, env, "beat-a")
        wait_until(lambda: set(executed(client)) == set(SCHEDULE), timeout_s=START_TIMEOUT_S,
                   what="every entry's first run")
        beat_b = start_beat(processes, env, "beat-b")
        _after(2)

        # 1. the leader SIGKILLed mid-second (between its ticks), 2. a worker stopped, 3. Redis
        # restarted while the standby waits for the dead leader's lock to lapse
        wait_until(lambda: 0.4 <= time.time() % 1 <= 0.6, timeout_s=2, interval_s=0.005, what="mid-second")
        os.killpg(beat_a.pid, signal.SIGKILL)
        beat_a.wait(timeout=10)
        stopped_worker = workers.current["w1"]
        os.killpg(stopped_worker.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        restart_redis(server, down_s=REDIS_DOWN_S)
        wait_until(lambda: SENT.search(Path(beat_b.log_path).read_text()), timeout_s=30, what="the takeover")
        wait_until(lambda: time.monotonic() - stopped >= WORKER_STOPPED_S, timeout_s=WORKER_STOPPED_S + 5,
                   interval_s=0.1, what="the stop to last")
        os.killpg(stopped_worker.pid, signal.SIGCONT)
        beat_c = start_beat(processes, env, "beat-c")  # the dead leader back, as a standby

        # 4. a pool process SIGKILLed in the middle of a run (the worker requeues its message)
        client.set(lt.BLOCK_PREFIX + "chaos", 1, ex=30)
        before = len(lt.entered(client, "chaos"))
        wait_until(lambda: len(lt.entered(client, "chaos")) > before, timeout_s=15, what="a run to block")
        victim = lt.entered(client, "chaos")[-1]
        os.kill(victim["pid"], signal.SIGKILL)
        client.delete(lt.BLOCK_PREFIX + "chaos")

        # 5. Redis restarted again, both beats up
        _after(3)
        back_at = restart_redis(server, down_s=REDIS_DOWN_S)
        wait_until(lambda: all(max(runs) >= back_at + timedelta(seconds=RUN_ON_S)
                               for runs in executed(client).values()), timeout_s=RUN_ON_S + 30, interval_s=0.2,
                   what="every entry to run on after the last restart")
        alive = {name: proc.poll() is None for name, proc in (("beat-b", beat_b), ("beat-c", beat_c))}
        for beat in (beat_b, beat_c):
            stop_process_tree(beat)
        wait_drained(client, timeout_s=60)
        workers.stop()
        for worker in workers.current.values():
            stop_process_tree(worker)

        # -- the dispatch ledger
        sent, acquired = read_beat_logs({name: Path(p.log_path) for name, p in
                                         (("beat-a", beat_a), ("beat-b", beat_b), ("beat-c", beat_c))})
        fences = Counter(fence for _, _, fence in acquired)
        assert all(n == 1 for n in fences.values()), f"a fence handed out twice: {fences}"
        dispatched_twice = {k: n for k, n in Counter((s.entry, s.instant) for s in sent).items() if n > 1}
        stale = [s for s in sent if any(fence > s.fence and at < s.at for at, _, fence in acquired)]
        # -- the execution ledger
        runs, missed, unacked = executed(client), missed_instants(client), unacked_instants(client)
        due, ran_once, ran_twice, missed_by_policy, unaccounted = 0, 0, {}, 0, {}
        overlap_skipped, awaiting_redelivery = [], []
        for entry, spec in SCHEDULE.items():
            ran, gave_up = runs[entry], set(missed.get(entry, []))
            assert not gave_up & set(ran), f"{entry}: an instant both ran and was given up"
            if spec["catchup"] == "all":
                assert not gave_up, f"{entry}: catchup all gave up {sorted(gave_up)[:3]}"
            first, last = min(ran), max([*ran, *gave_up])
            grid = [first + timedelta(seconds=spec["every"] * k)
                    for k in range(round((last - first).total_seconds() / spec["every"]) + 1)]
            due += len(grid)
            ran_once += sum(1 for t in grid if ran.get(t) == 1)
            ran_twice.update({(entry, t): n for t, n in ran.items() if n > 1})
            missed_by_policy += sum(1 for t in grid if t in gave_up)
            for t in (t for t in grid if t not in ran and t not in gave_up):
                record = claim_record(client, run_id_for(entry=entry, fire_at=t, task_id=""))
                if record is not None and record.state is ClaimState.SKIPPED and spec.get("overlap") == "skip":
                    overlap_skipped.append((entry, t))  # its overlap policy's decision (a run stalled by SIGSTOP)
                elif (entry, t) in unacked:
                    awaiting_redelivery.append((entry, t))  # held by a worker that crashed: back after the visibility timeout
                else:
                    unaccounted.setdefault(entry, []).append(t)
        wall_s = time.monotonic() - started
        print(f"chaos: {due} instants due, {ran_once} ran once, {len(ran_twice)} ran twice, "
              f"{missed_by_policy} missed by policy, {len(overlap_skipped)} skipped by overlap policy, "
              f"{len(awaiting_redelivery)} unacked by a crashed worker, {sum(map(len, unaccounted.values()))} "
              "unaccounted; "
              f"{len(sent)} dispatches, {len(dispatched_twice)} instants dispatched twice, {len(stale)} under a "
              f"stale fence; fences {sorted(fences)}; beats alive at the end {alive}; worker restarts "
              f"{workers.crashes}; wall {wall_s:.0f} s")
        assert not ran_twice, f"ran twice: {sorted(ran_twice.items())[:5]}"
        assert not dispatched_twice, f"dispatched twice: {sorted(dispatched_twice.items())[:5]}"
        assert not stale, f"dispatched without the lock: {stale[:5]}"
        assert not unaccounted, f"due, not run, not given up by policy: {sorted(unaccounted.items())[:3]}"
        assert ran_once + missed_by_policy + len(overlap_skipped) + len(awaiting_redelivery) == due
        assert not awaiting_redelivery or workers.crashes
        assert len(lt.entered(client, "chaos")) > before + 1  # the killed run's instant ran after all
    finally:
        client.close()
        server.kill()

"""Sentinel failover with real servers: a master, a replica and three sentinels (``redis-server
--sentinel``); beat, two workers and the monitor reach Redis only through the sentinels
(tasks/infra/redis_sentinel.py). The master is SIGKILLed mid-run; the sentinels promote the replica
and every component carries on by itself, without a restart.

The schedule is ``every: 10`` entries spread over the 10 s grid (an instant falls due every 2 s),
of a short task that counts its executions in a ledger on a Redis of its own
(``tests.tasks.beat.ledger_apart_tasks``), which the failover cannot touch. From it the test reports the
instants due, executed once, doubled (must be 0) and lost; a lost instant may only be one the
failover window explains (Redis replicates asynchronously: the master's last writes, a queued
message or beat's record of a send, can die with it), and it says for each whether catch-up or the
delivery watch sent it again.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from monitoring.heartbeats import HEARTBEATS_KEY
from tests.tasks.beat import ledger_apart_tasks as apart
from tests.tasks.beat import ledger_tasks as lt
from tests.process.test_beat_faults import platform_env, start_beat
from tests.servers import RedisServer, free_port, missing, wait_until

pytestmark = pytest.mark.process

MASTER_NAME = "beatkeeper"
EVERY_S = 10
ENTRIES = 5  # phases 0, 2, 4, 6, 8 s: an instant due every 2 s
DOWN_AFTER_MS = 1000  # sentinels call the master down after this silence...
FAILOVER_TIMEOUT_MS = 5000  # ... and retry a failed failover after this
CONTINUE_WITHIN_S = 30  # every component must carry on within this of the promotion
RUN_AFTER_PROMOTION_S = 22  # instants observed after the promotion (two per entry)
SETTLE_S = 6  # an instant due this close to the end is not counted (it may still be on its way)
SENTINEL_PASSWORD = "sentinel-secret"
REDIS_PASSWORD = "master-secret"


class SentinelServer:
    """``redis-server sentinel.conf --sentinel`` on a free port, watching ``master_port``."""

    def __init__(self, workdir: Path, master_port: int):
        self.workdir = workdir
        self.port = free_port()
        self.master_port = master_port
        self.proc: subprocess.Popen | None = None

    def start(self) -> "SentinelServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "sentinel.conf"  # sentinels rewrite their configuration: a file of its own
        conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.workdir}", f"logfile {self.workdir / 'sentinel.log'}",
            f"requirepass {SENTINEL_PASSWORD}", f"sentinel sentinel-pass {SENTINEL_PASSWORD}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2",
            f"sentinel auth-pass {MASTER_NAME} {REDIS_PASSWORD}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1", ""]))
        self.proc = subprocess.Popen([shutil.which("redis-server"), str(conf), "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=SENTINEL_PASSWORD, decode_responses=True, socket_timeout=2)

    def master(self) -> tuple[str, int] | None:
        try:
            host, port = self.client().sentinel_get_master_addr_by_name(MASTER_NAME)
            return host, int(port)
        except (redis.RedisError, TypeError):
            return None

    def knows_everyone(self, sentinels: int) -> bool:
        """It sees the replica and the other sentinels (they meet through the master's hello channel)."""
        try:
            client = self.client()
            return (len(client.sentinel_sentinels(MASTER_NAME)) == sentinels - 1
                    and len(client.sentinel_slaves(MASTER_NAME)) == 1)
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def sentinel_group(tmp_path):
    if shutil.which("redis-server") is None:
        missing("redis-server (apt-get install redis-server)")
    auth = ("--requirepass", REDIS_PASSWORD, "--masterauth", REDIS_PASSWORD)
    master = RedisServer(tmp_path / "master", extra_args=auth)
    master.client_kwargs = {"password": REDIS_PASSWORD}
    replica = RedisServer(tmp_path / "replica", extra_args=(*auth, "--replicaof", "127.0.0.1", str(master.port)))
    replica.client_kwargs = {"password": REDIS_PASSWORD}
    sentinels = [SentinelServer(tmp_path / f"sentinel-{n}", master.port) for n in range(3)]
    ledger = RedisServer(tmp_path / "ledger")
    started = [ledger, master, replica, *sentinels]
    try:
        for server in started:
            server.start()
        wait_until(lambda: redis.Redis(port=replica.port, password=REDIS_PASSWORD).info("replication")
                   .get("master_link_status") == "up", timeout_s=20, what="the replica in sync")
        wait_until(lambda: all(s.knows_everyone(len(sentinels)) for s in sentinels), timeout_s=30,
                   what="the sentinels to see the replica and each other")
        yield master, replica, sentinels, ledger
    finally:
        for server in reversed(started):
            server.stop() if isinstance(server, SentinelServer) else server.kill()


def _entries() -> dict:
    return {f"every10-{n}": {"task": apart.record_apart.name, "every": EVERY_S, "phase": 2 * n,
                             "catchup": "all", "expires": 60} for n in range(ENTRIES)}


def _grid(phase_s: float, start: datetime, end: datetime) -> list[datetime]:
    """Instants ``phase + k * EVERY_S`` in [start, end]."""
    first = start.timestamp() - (start.timestamp() - phase_s) % EVERY_S
    first = first if first >= start.timestamp() else first + EVERY_S
    out, t = [], first
    while t <= end.timestamp():
        out.append(datetime.fromtimestamp(t, timezone.utc))
        t += EVERY_S
    return out


def _sends(beat_log: str) -> dict[tuple[str, str], int]:
    """(entry, instant) -> times beat sent it (its own sends and the delivery watch's)."""
    counts: dict[tuple[str, str], int] = {}
    for entry, instant in re.findall(r"beat: sent (\S+) \(\S+\) for (\S+) \(fence", beat_log):
        counts[(entry, instant)] = counts.get((entry, instant), 0) + 1
    return counts


def _resent_by_watch(beat_log: str) -> set[tuple[str, str]]:
    return set(re.findall(r"beat: (\S+) for (\S+) never reached a worker; sent it again", beat_log))


def test_beat_workers_and_the_monitor_follow_a_sentinel_failover(sentinel_group, processes, tmp_path):
    # (sentinel_group first: its servers outlive the processes, which stop first)
    master, replica, sentinels, ledger = sentinel_group
    ledger_client = redis.Redis(port=ledger.port, decode_responses=True)
    where = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
    env = {**platform_env(tmp_path, _entries()), "REDIS_URL": None, "CELERY_RESULT_BACKEND": None,
           "BEATKEEPER_REDIS_SENTINELS": where, "BEATKEEPER_REDIS_SENTINEL_MASTER": MASTER_NAME,
           "BEATKEEPER_REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD, "REDIS_PASSWORD": REDIS_PASSWORD,
           "BEATKEEPER_MIN_INTERVAL": "10", "BEATKEEPER_TASK_MODULES": "tests.tasks.beat.ledger_apart_tasks",
           apart.LEDGER_URL: ledger.url, "BEATKEEPER_MONITOR_PORT": str(free_port()),
           "BEATKEEPER_MONITOR_INTERVAL": "0.5"}

    # all four start at once (a loaded 2-core machine takes seconds for each)
    workers = [processes.celery("worker", "-n", f"w{n}@%h", "--without-gossip", "--without-mingle",
                                "--without-heartbeat", "--loglevel", "INFO", "-P", "prefork", "-c", "1",
                                "-Q", "default", name=f"w{n}", env=env) for n in (1, 2)]
    beat = start_beat(processes, env, "beat")
    monitor = processes.start([sys.executable, "-m", "tasks.cli", "monitor"], name="monitor", env=env)
    for worker in workers:
        wait_until(lambda: b" ready." in Path(worker.log_path).read_bytes() or worker.poll() is not None,
                   timeout_s=60, what="the workers ready")
    # running: every entry executed once through the first master
    wait_until(lambda: {f.partition("|")[0] for f in lt.ledger(ledger_client)} >= set(_entries()),
               timeout_s=60, interval_s=0.2, what="every entry's first run")
    first_master = redis.Redis(port=master.port, password=REDIS_PASSWORD, decode_responses=True)
    wait_until(lambda: first_master.zscore(HEARTBEATS_KEY, "monitor"), timeout_s=60, interval_s=0.2,
               what="the monitor's heartbeat on the first master")
    started_at = datetime.fromtimestamp(min(lt.executed_at(ledger_client).values()), timezone.utc)

    master.kill(signal.SIGKILL)
    killed_at = time.time()
    wait_until(lambda: all(s.master() == ("127.0.0.1", replica.port) for s in sentinels),
               timeout_s=30, interval_s=0.1, what="the sentinels to promote the replica")
    promoted_at = time.time()
    new_master = redis.Redis(port=replica.port, password=REDIS_PASSWORD, decode_responses=True)
    assert new_master.info("replication")["role"] == "master"

    # every component carries on by itself, through the new master
    def executed_since(at: float) -> dict[str, float]:
        return {f: t for f, t in lt.executed_at(ledger_client).items() if t > at}

    carried_on_at: dict[str, float] = {}  # component -> when it was first seen working after the promotion

    def carried_on() -> bool:
        now = time.time()
        for who in apart_by(ledger_client, executed_since(promoted_at)):
            carried_on_at.setdefault(who, now)
        if any(datetime.fromisoformat(i).timestamp() > promoted_at for _, i in _sends(_log(beat))):
            carried_on_at.setdefault("beat", now)
        if (new_master.zscore(HEARTBEATS_KEY, "monitor") or 0) > promoted_at:
            carried_on_at.setdefault("monitor", now)
        return {"beat", "monitor", "w1", "w2"} <= set(carried_on_at)
    wait_until(carried_on, timeout_s=CONTINUE_WITHIN_S, interval_s=0.2,
               what="beat, both workers and the monitor to carry on through the new master")
    carried_on_s = {who: round(at - promoted_at, 1) for who, at in sorted(carried_on_at.items())}
    time.sleep(max(0.0, promoted_at + RUN_AFTER_PROMOTION_S - time.time()))
    ended_at = datetime.now(timezone.utc)
    # the CLI too reaches the new master through the sentinels (while the last instants land)
    status = subprocess.run([sys.executable, "-m", "tasks.cli", "status", "--no-workers"], capture_output=True,
                            text=True, env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
                            timeout=60)
    assert status.returncode == 0 and "every10-0" in status.stdout, status.stdout + status.stderr
    assert "beat lock    held" in status.stdout, status.stdout
    time.sleep(max(0.0, ended_at.timestamp() + SETTLE_S - time.time()))
    for proc in (*workers, beat, monitor):
        assert proc.poll() is None, f"{proc.args} exited {proc.returncode}:\n{_log(proc)[-3000:]}"

    # -- the ledger ---------------------------------------------------------------------------
    runs = lt.ledger(ledger_client)
    counted_end = ended_at - timedelta(seconds=SETTLE_S)
    due = [(name, t) for name, spec in _entries().items() for t in _grid(spec["phase"], started_at, counted_end)]
    sends, by_watch = _sends(_log(beat)), _resent_by_watch(_log(beat))
    once = [d for d in due if runs.get(f"{d[0]}|{d[1].isoformat()}") == 1]
    doubled = {f: n for f, n in runs.items() if n > 1}
    lost = [d for d in due if f"{d[0]}|{d[1].isoformat()}" not in runs]
    sent_again = {(e, i): n for (e, i), n in sends.items() if n > 1 or (e, i) in by_watch}
    report = [f"sentinel failover: master SIGKILLed at +{killed_at - started_at.timestamp():.1f}s, replica promoted "
              f"{promoted_at - killed_at:.1f}s later, then each component carried on "
              f"(seconds after the promotion: {carried_on_s})",
              f"  instants due {len(due)}, executed once {len(once)}, doubled {len(doubled)}, lost {len(lost)}; "
              f"sent again by the delivery watch {len(by_watch)}, by catch-up {len(set(sent_again) - by_watch)}"]
    for entry, instant in lost:
        report.append(f"  lost {entry} @ {instant.isoformat()}: its message or beat's record of it died with the "
                      "master (asynchronous replication); not recovered")
    for (entry, instant), n in sorted(sent_again.items()):
        how = "the delivery watch" if (entry, instant) in by_watch else "catch-up (beat's record of the send was lost)"
        report.append(f"  {entry} @ {instant} sent {n} times: recovered by {how}; "
                      f"executed {runs.get(f'{entry}|{instant}', 0)} time(s)")
    print("\n".join(report))
    assert not doubled, report
    window = (killed_at - EVERY_S, promoted_at + CONTINUE_WITHIN_S)  # what the failover can explain
    unexplained = [d for d in lost if not window[0] <= d[1].timestamp() <= window[1]]
    assert not unexplained, report
    assert len(once) + len(lost) == len(due) and len(due) >= ENTRIES * 2, report
    for proc in (beat, *workers, monitor):
        assert "Traceback" not in _log(proc), _log(proc)[-3000:]


def apart_by(client: redis.Redis, fields) -> set[str]:
    """Short names (w1, w2) of the workers that executed ``fields`` first."""
    names = client.hmget(apart.BY_KEY, list(fields)) if fields else []
    return {n.split("@")[0] for n in names if n}


def _log(proc) -> str:
    return Path(proc.log_path).read_text(errors="replace")

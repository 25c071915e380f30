"""Beat under faults, with real redis-server, beat and worker processes: every scheduled instant
executes exactly once, counted by the task itself in a ledger (``tests.tasks.beat.ledger_tasks``).

Two beats on one schedule with a forced lock loss; the leader SIGKILLed (catch-up policies decide
the gap); beat's and the worker's Redis connections dropped under load; Redis itself SIGKILLed and
restarted from its append-only file; and an evicting Redis refused at start.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from monitoring.events import read_events
from schedules.interval import IntervalTrigger
from tasks import headers
from tasks.beat import delivery_watch
from tasks.beat.lock import LOCK_LOST_EXIT_CODE
from tasks.beat.scheduler import ON_TIME_SLACK_S
from tests.tasks.beat import ledger_tasks as lt
from tests.servers import RedisServer, free_port, stop_process_tree, wait_until

pytestmark = pytest.mark.process

LEDGER_MODULES = "tests.tasks.beat.ledger_tasks"
START_TIMEOUT_S = 60
LOOP_INTERVAL_S = 1
LOCK_TIMEOUT_S = 5
ON_TIME_S = LOOP_INTERVAL_S + ON_TIME_SLACK_S  # how old a due instant may be and still run on time
BEAT_LOCK_KEY = "redbeat::lock"
ENTRIES_TWO_BEATS = 80  # every 1 s: 2,000 instants in 25 s


# -- the platform under test ------------------------------------------------------------------

def platform_env(tmp_path: Path, schedule: dict, *, redis_url: str | None = None,
                 lock_timeout_s: int = LOCK_TIMEOUT_S) -> dict[str, str]:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(schedule))
    env = {"BEATKEEPER_SCHEDULE": str(path), "BEATKEEPER_MIN_INTERVAL": "1",
           "BEATKEEPER_LOOP_INTERVAL": str(LOOP_INTERVAL_S), "BEATKEEPER_BEAT_LOCK_TIMEOUT": str(lock_timeout_s),
           "BEATKEEPER_MAX_RUNS_PER_HOUR": "1000000", "BEATKEEPER_DISABLE": "beatkeeper-heartbeat",
           "BEATKEEPER_TASK_MODULES": LEDGER_MODULES}
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def ticking(count: int, *, every_s: int = 1, prefix: str = "tick", **policy) -> dict:
    """``count`` entries of the ledger task, each every ``every_s``."""
    return {f"{prefix}-{n:02d}": {"task": lt.record.name, "every": every_s, **policy} for n in range(count)}


def start_worker(processes, env: dict, name: str, *, concurrency: int):
    proc = processes.celery("worker", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
                            "--without-heartbeat", "--loglevel", "INFO", "-P", "prefork", "-c", str(concurrency),
                            "-Q", "default", name=name, env=env)
    wait_until(lambda: _logged(proc, b" ready."), timeout_s=START_TIMEOUT_S, what=f"worker {name} ready")
    return proc


def start_beat(processes, env: dict, name: str):
    """A beat process, returned once it is about to take (or wait for) the beat lock."""
    proc = processes.celery("beat", "--loglevel=INFO", name=name, env=env)
    wait_until(lambda: _logged(proc, b"beat: Starting..."), timeout_s=START_TIMEOUT_S, what=f"beat {name} started")
    return proc


def _logged(proc, text: bytes) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"{proc.args} exited {proc.returncode}:\n{Path(proc.log_path).read_text()[-3000:]}")
    return text in Path(proc.log_path).read_bytes()


# -- reading the ledger -----------------------------------------------------------------------

def executed(client) -> dict[str, dict[datetime, int]]:
    """entry -> {fire instant: executions}."""
    by_entry: dict[str, dict[datetime, int]] = defaultdict(dict)
    for field, count in lt.ledger(client).items():
        entry, _, fire_at = field.partition("|")
        by_entry[entry][datetime.fromisoformat(fire_at)] = count
    return by_entry


def instants_executed(client) -> int:
    return int(client.hlen(lt.LEDGER_KEY))


def grid_gaps(instants, *, every_s: float) -> list[datetime]:
    """Grid instants missing between the first and the last of ``instants``."""
    ordered = sorted(instants)
    if not ordered:
        return []
    expected = {ordered[0] + timedelta(seconds=every_s * k)
                for k in range(round((ordered[-1] - ordered[0]).total_seconds() / every_s) + 1)}
    return sorted(expected - set(ordered))


def assert_each_instant_once_without_gaps(by_entry: dict[str, dict[datetime, int]], entries, *, every_s: float = 1):
    assert set(by_entry) == set(entries)
    doubled = {(e, t): n for e, runs in by_entry.items() for t, n in runs.items() if n != 1}
    assert not doubled, f"{len(doubled)} instants not executed exactly once, e.g. {sorted(doubled.items())[:3]}"
    gaps = {e: g for e, runs in by_entry.items() if (g := grid_gaps(runs, every_s=every_s))}
    assert not gaps, f"instants lost between the first and the last: {sorted(gaps.items())[:3]}"


def wait_drained(client, *, timeout_s: float = 60) -> None:
    """Until the queue is empty and the ledger stopped growing. (Redis' unacked set may keep a
    message whose ack was lost in an outage: the broker redelivers it after its visibility
    timeout, and the gap check below would catch an instant that only it could have run.)"""
    seen = {"size": -1, "since": time.monotonic()}

    def settled() -> bool:
        if client.llen("default"):
            seen["size"] = -1
            return False
        size = instants_executed(client)
        if size != seen["size"]:
            seen.update(size=size, since=time.monotonic())
            return False
        return time.monotonic() - seen["since"] >= 1.5

    wait_until(settled, timeout_s=timeout_s, interval_s=0.1, what="the queue to drain")


def missed_instants(client) -> dict[str, list[datetime]]:
    """entry -> instants beat recorded as missed (``missed_runs`` events)."""
    missed: dict[str, list[datetime]] = defaultdict(list)
    for event in read_events(client, kind="missed_runs"):
        assert event.data["count"] == len(event.data["instants"])  # none left unlisted
        missed[event.subject].extend(datetime.fromisoformat(t) for t in event.data["instants"])
    return missed


def _duplicates_skipped(worker_log: str) -> int:
    return sum(1 for line in worker_log.splitlines() if "identity:" in line and "skipped:" in line)


def meta_of(client, entry: str) -> str | None:
    return client.hget(f"redbeat:{entry}", "meta")


# -- 1. two beats, a forced lock loss ------------------------------------------------------------

def test_two_beats_execute_every_instant_exactly_once_across_a_forced_lock_loss(processes, redis_client, tmp_path):
    schedule = ticking(ENTRIES_TWO_BEATS, catchup="all", catchup_max=100)
    env = platform_env(tmp_path, schedule)
    target = 2_000
    worker = start_worker(processes, env, "ledger", concurrency=4)
    leader = start_beat(processes, env, "beat-a")
    wait_until(lambda: instants_executed(redis_client), timeout_s=START_TIMEOUT_S, what="the leader's first run")
    standby = start_beat(processes, env, "beat-b")  # blocks on the lock the leader holds
    wait_until(lambda: instants_executed(redis_client) >= target // 2, timeout_s=120, what="half the instants")

    # Another owner's token: the leader notices at its next renewal; the standby takes over once it is
    # gone. Held until the leader exited: lapsing while a loaded leader's tick is late, the lock
    # would be free at its renewal, which retakes a merely expired lock (``BeatLock.renewal_failed``).
    redis_client.set(BEAT_LOCK_KEY, "intruder", px=20_000)
    lost_at = datetime.now(timezone.utc)
    assert leader.wait(timeout=15) == LOCK_LOST_EXIT_CODE
    assert redis_client.delete(BEAT_LOCK_KEY) == 1  # still the intruder's: nobody else could take it
    assert b"lost the beat lock" in Path(leader.log_path).read_bytes()
    # What a second beat firing the same instants would send: dispatches of instants already run.
    resent = sorted(lt.ledger(redis_client))[::10]
    for field in resent:
        entry, _, fire_at = field.partition("|")
        lt.record.apply_async(headers=headers.dispatch_headers(entry, datetime.fromisoformat(fire_at)))
    wait_until(lambda: instants_executed(redis_client) >= target + len(schedule), timeout_s=180,
               what=f"{target} instants")
    assert standby.poll() is None
    stop_process_tree(standby)
    wait_drained(redis_client)

    by_entry = executed(redis_client)
    assert sum(len(runs) for runs in by_entry.values()) >= target
    assert len(resent) >= target // 20
    assert_each_instant_once_without_gaps(by_entry, schedule)
    # every entry kept firing after the loss, dispatched by the standby
    assert all(max(runs) > lost_at + timedelta(seconds=2) for runs in by_entry.values())
    lags = sorted(at - datetime.fromisoformat(field.partition("|")[2]).timestamp()
                  for field, at in lt.executed_at(redis_client).items())
    print(f"{len(lags)} instants; execution lag p50 {lags[len(lags) // 2]:.2f} s, max {lags[-1]:.2f} s; "
          f"{_duplicates_skipped(Path(worker.log_path).read_text())} duplicate deliveries skipped")


# -- 2. the leader SIGKILLed: failover and catch-up --------------------------------------------------

def test_a_killed_leader_is_replaced_within_the_lock_timeout_and_its_gap_follows_each_catchup_policy(
        processes, redis_client, tmp_path):
    lock_timeout_s = 12  # a gap longer than the on-time window, so some instants count as missed
    schedule = {"skip-1s": {"task": lt.record.name, "every": 1, "catchup": "skip"},
                "latest-1s": {"task": lt.record.name, "every": 1, "catchup": "latest"},
                "all-1s": {"task": lt.record.name, "every": 1, "catchup": "all", "catchup_max": 50},
                "latest-15s": {"task": lt.record.name, "every": 15, "catchup": "latest"}}
    env = platform_env(tmp_path, schedule, lock_timeout_s=lock_timeout_s)
    start_worker(processes, env, "ledger", concurrency=2)
    leader = start_beat(processes, env, "beat-a")
    wait_until(lambda: executed(redis_client).get("skip-1s"), timeout_s=START_TIMEOUT_S, what="the leader's runs")
    standby = start_beat(processes, env, "beat-b")

    # Kill mid-second (away from the leader's ticks), 2.5 s before a 15 s instant: that instant
    # falls in the gap and is too old to be on time when the standby takes over.
    fifteen = IntervalTrigger(15).next_fire_after(datetime.now(timezone.utc) + timedelta(seconds=3))
    kill_at = fifteen - timedelta(seconds=2.5)
    wait_until(lambda: datetime.now(timezone.utc) >= kill_at, timeout_s=20, interval_s=0.01, what="the kill moment")
    before = meta_of(redis_client, "all-1s")
    os.killpg(leader.pid, signal.SIGKILL)
    killed = time.monotonic()
    leader.wait(timeout=10)
    wait_until(lambda: meta_of(redis_client, "all-1s") != before, timeout_s=lock_timeout_s + 10, interval_s=0.02,
               what="the standby's first dispatch")
    takeover_s = time.monotonic() - killed
    took_over_at = datetime.now(timezone.utc)
    assert takeover_s <= lock_timeout_s + LOOP_INTERVAL_S + 1.0, f"takeover took {takeover_s:.1f} s"
    wait_until(lambda: fifteen in executed(redis_client).get("latest-15s", {}), timeout_s=20,
               what="the missed 15 s instant to run late")
    wait_until(lambda: max(executed(redis_client)["skip-1s"]) >= took_over_at + timedelta(seconds=2), timeout_s=20,
               what="a few on-time runs after the takeover")
    stop_process_tree(standby)
    wait_drained(redis_client)

    by_entry, missed = executed(redis_client), missed_instants(redis_client)
    assert all(n == 1 for runs in by_entry.values() for n in runs.values())
    # skip: the instants too old at the takeover were recorded as missed, never run; nothing else is absent
    skipped = set(missed["skip-1s"])
    assert skipped and not skipped & set(by_entry["skip-1s"])
    assert grid_gaps(set(by_entry["skip-1s"]) | skipped, every_s=1) == []
    assert max(skipped) < took_over_at - timedelta(seconds=ON_TIME_S)
    first_on_time = min(t for t in by_entry["skip-1s"] if t > max(skipped))
    assert first_on_time >= took_over_at - timedelta(seconds=ON_TIME_S + 0.5)
    # latest with on-time instants to run: every missed one is superseded (the same instants as skip)
    assert sorted(missed["latest-1s"]) == sorted(skipped)
    assert not set(missed["latest-1s"]) & set(by_entry["latest-1s"])
    # all: the missed instants ran too
    assert "all-1s" not in missed and grid_gaps(by_entry["all-1s"], every_s=1) == []
    assert skipped <= set(by_entry["all-1s"])
    # latest with nothing on time: the most recent missed instant ran, late
    assert "latest-15s" not in missed and grid_gaps(by_entry["latest-15s"], every_s=15) == []
    ran_late_s = lt.executed_at(redis_client)[f"latest-15s|{fifteen.isoformat()}"] - fifteen.timestamp()
    assert ran_late_s > ON_TIME_S
    print(f"takeover {takeover_s:.2f} s; {len(skipped)} instants missed per 1 s entry; 15 s instant ran "
          f"{ran_late_s:.1f} s late")


# -- 3. broker connections dropped while beat publishes and the worker consumes --------------------

def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a prefork worker's pool children hold connections too)."""
    tree, i = [pid], 0
    while i < len(tree):
        for task in Path(f"/proc/{tree[i]}/task").glob("*"):
            try:
                tree.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
        i += 1
    return tree


def _socket_ports(pids: list[int]) -> set[int]:
    """Local TCP ports of the sockets processes ``pids`` hold (from /proc)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _drop_connections(killer: redis.Redis, pids: list[int]) -> int:
    """Kill every Redis connection of processes ``pids`` (and their children)."""
    ports = _socket_ports([p for pid in pids for p in _process_tree(pid)])
    victims = [c["id"] for c in killer.client_list(_type="normal")
               if int(c["addr"].rsplit(":", 1)[1]) in ports]
    return sum(int(killer.client_kill_filter(_id=victim)) for victim in victims)


def test_dropped_broker_connections_lose_no_instant_and_double_none(processes, redis_client, redis_url, tmp_path):
    """Beat's connections (scheduler store, publisher) and the worker's (consumer, pool children)
    dropped again and again. A message the consumer's connection loses after the broker took it
    is found by beat's delivery watch and sent again (``tasks.beat.delivery_watch``)."""
    schedule = ticking(20, catchup="all", catchup_max=100)
    env = platform_env(tmp_path, schedule)
    worker = start_worker(processes, env, "ledger", concurrency=2)
    beat = start_beat(processes, env, "beat")
    wait_until(lambda: instants_executed(redis_client) >= 2 * len(schedule), timeout_s=START_TIMEOUT_S,
               what="the first runs")

    killer = redis.Redis.from_url(redis_url)
    stop = threading.Event()
    killed: list[int] = []

    def drop_connections() -> None:
        # Twice just after each whole second, while beat publishes that instant and the worker
        # takes it, and once between.
        while not stop.is_set():
            second = int(time.time())
            for offset_s in (1.005, 1.02, 1.5):
                if stop.wait(max(0.0, second + offset_s - time.time())):
                    return
                killed.append(_drop_connections(killer, [beat.pid, worker.pid]))

    thread = threading.Thread(target=drop_connections, daemon=True)
    thread.start()
    try:
        faults_from = datetime.now(timezone.utc)
        wait_until(lambda: datetime.now(timezone.utc) >= faults_from + timedelta(seconds=12), timeout_s=20,
                   interval_s=0.2, what="twelve seconds of dropped connections")
    finally:
        stop.set()
        thread.join(timeout=5)
    faults_to = datetime.now(timezone.utc)
    wait_until(lambda: all(max(runs) >= faults_to + timedelta(seconds=3) for runs in executed(redis_client).values()),
               timeout_s=90, what="every entry to run again after the faults")
    # every dispatch of the fault window claimed by a worker (a lost one sent again first)
    # (bound: a lost one is looked for after the grace, within a sweep; a loaded worker's queue lag on top)
    wait_until(lambda: redis_client.zcount(delivery_watch.PENDING_KEY, 0, faults_to.timestamp()) == 0,
               timeout_s=3 * (delivery_watch.PICKUP_GRACE_S + 4 * delivery_watch.SWEEP_S),
               what="the dispatches of the fault window to be claimed")
    assert beat.poll() is None and worker.poll() is None
    stop_process_tree(beat)
    wait_drained(redis_client)

    # every second (three rounds each, for 12 s) dropped connections; a single round may find none
    # open when the previous one's reconnects are still under way on a loaded machine
    seconds = [killed[i:i + 3] for i in range(0, len(killed) - len(killed) % 3, 3)]
    assert len(killed) >= 12 and all(any(rounds) for rounds in seconds), f"connections dropped per round: {killed}"
    by_entry = executed(redis_client)
    assert_each_instant_once_without_gaps(by_entry, schedule)
    assert all(min(runs) < faults_from for runs in by_entry.values())  # the fault window is inside the checked span
    assert read_events(redis_client, kind="dispatch_lost") == []
    beat_log, worker_log = Path(beat.log_path).read_text(), Path(worker.log_path).read_text()
    print(f"dropped {sum(killed)} connections in {len(killed)} rounds; beat: {beat_log.count('could not send')} "
          f"refused publishes, {beat_log.count('Redis unavailable')} failed ticks, "
          f"{beat_log.count('never reached a worker')} lost dispatches sent again; worker: "
          f"{worker_log.count('Connection to broker lost')} reconnects, "
          f"{_duplicates_skipped(worker_log)} duplicates skipped")


# -- 4. Redis SIGKILLed and restarted from its append-only file ------------------------------------

def test_beat_and_worker_ride_out_a_redis_restart_without_losing_or_doubling_an_instant(processes, tmp_path):
    server = RedisServer(tmp_path / "redis", port=free_port(), appendonly=True,
                         extra_args=("--appendfsync", "always")).start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        # Half the runs take a while, so runs are in flight (unacknowledged) when Redis dies.
        schedule = {**ticking(5, catchup="all", catchup_max=100),
                    **ticking(5, prefix="slow", kwargs={"hold_s": 0.4}, catchup="all", catchup_max=100)}
        env = platform_env(tmp_path, schedule, redis_url=server.url)
        worker = start_worker(processes, env, "ledger", concurrency=4)
        beat = start_beat(processes, env, "beat")
        wait_until(lambda: instants_executed(client) >= 5 * len(schedule), timeout_s=START_TIMEOUT_S,
                   what="the first runs")

        # A fifth of a second into a second: the slow runs of this instant are in flight.
        wait_until(lambda: 0.15 <= time.time() % 1 <= 0.25, timeout_s=2, interval_s=0.005, what="mid-run")
        server.kill(signal.SIGKILL)
        down_at = datetime.now(timezone.utc)
        # Down longer than the beat lock's timeout: the lock key has expired when Redis is back.
        wait_until(lambda: datetime.now(timezone.utc) >= down_at + timedelta(seconds=LOCK_TIMEOUT_S + 1),
                   timeout_s=LOCK_TIMEOUT_S + 5, interval_s=0.1, what="the outage to outlast the beat lock")
        server.start()
        restarted, restarted_at = time.monotonic(), datetime.now(timezone.utc)
        # `all` first works through the outage's instants one run at a time (README, catch-up): on a
        # loaded 2-core machine a slow entry's backlog alone takes tens of seconds
        wait_until(lambda: all(max(runs) > restarted_at for runs in executed(client).values()),
                   timeout_s=90, interval_s=0.1, what="every entry to run again after the restart")
        resumed_s = time.monotonic() - restarted
        wait_until(lambda: all(max(runs) >= restarted_at + timedelta(seconds=3) for runs in executed(client).values()),
                   timeout_s=90, what="a few more runs")
        assert beat.poll() is None and worker.poll() is None  # neither needed a restart of its own
        stop_process_tree(beat)
        wait_drained(client)
        stop_process_tree(worker)  # while its Redis is still there to say goodbye to

        by_entry = executed(client)
        assert_each_instant_once_without_gaps(by_entry, schedule)
        assert all(min(runs) < down_at for runs in by_entry.values())  # the outage is inside the checked span
        print(f"resumed {resumed_s:.1f} s after the restart; {client.hlen('unacked')} message(s) left unacked "
              "by a lost ack")
    finally:
        client.close()
        server.kill()


# -- 6. an evicting Redis is refused at start ----------------------------------------------------

def test_beat_refuses_an_evicting_redis_saying_what_to_set(processes, tmp_path):
    server = RedisServer(tmp_path / "lru", extra_args=("--maxmemory-policy", "allkeys-lru")).start()
    try:
        env = platform_env(tmp_path, ticking(1), redis_url=server.url)
        beat = processes.celery("beat", "--loglevel=INFO", name="beat", env=env)
        assert beat.wait(timeout=START_TIMEOUT_S) != 0
        log = Path(beat.log_path).read_text()
        assert "Traceback" not in log
        assert "maxmemory-policy is 'allkeys-lru'" in log and "set `maxmemory-policy noeviction`" in log
        assert "refusing to start with failed start-up self-checks" in log
        assert not redis.Redis.from_url(server.url).exists("redbeat::schedule")  # nothing registered
    finally:
        server.kill()

"""Two deployments on ONE Redis database (``BEATKEEPER_NAMESPACE=alpha`` and ``=beta``), each with its
beat, worker and monitor, its heartbeat and an entry of the same name (``shared``, at the same
instants): nothing crosses. Every key the database held while they ran belongs to exactly one
deployment; each has its own heartbeat, alerts, beat lock and epoch, overlap lock, run claims,
policies, history (drained from its own spool into its own database) and runs; each entry ran in
its own deployment only."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, select

from monitoring.alerts import ALERTS_KEY
from monitoring.heartbeats import HEARTBEATS_KEY, LAST_BEAT_KEY
from monitoring.history import SPOOL_KEY
from monitoring.migrations import upgrade_database
from monitoring.models import task_runs
from tasks.headers import BEAT_EPOCH_KEY
from tasks.policy import LOCK_PREFIX, PUBLISHED_ENTRY_POLICIES_KEY, PUBLISHED_POLICIES_KEY
from tasks.guard.claim import RUN_KEY_PREFIX, record_key
from tests.process import namespace_tasks as nt
from tests.process.test_beat_faults import platform_env
from tests.servers import RedisServer, free_port, wait_until

pytestmark = pytest.mark.process

START_TIMEOUT_S = 60
RUNS_WANTED = 3  # runs of ``shared`` at instants both deployments ran
#: Same entry name, different policy and outcome: alpha's runs fail (so alpha alerts), beta's succeed.
DEPLOYMENTS = {"alpha": {"lock_ttl": 30, "outcome": nt.FAILING_ARG}, "beta": {"lock_ttl": 40, "outcome": "ok"}}
RAN_KEY = "test:ran"  # nt.RAN_KEY without the namespace (this test process has none)
#: The overlap lock's record: one name in both deployments (``lock_key: [job]``, same job), kept apart.
LOCK_META = f'{LOCK_PREFIX}{nt.record.name}:job="shared":meta'
#: Keys each deployment must hold under its own prefix: beat's store, lock and epoch, the published
#: schedule and policies, heartbeats, the monitor's, the overlap lock's fence, kombu's, the runs.
EACH_HOLDS = {"redbeat::schedule", "redbeat::lock", "redbeat:shared", "redbeat:fast-heartbeat", BEAT_EPOCH_KEY,
              PUBLISHED_POLICIES_KEY, PUBLISHED_ENTRY_POLICIES_KEY, HEARTBEATS_KEY, LAST_BEAT_KEY,
              "beatkeeper:monitor:leader", "beatkeeper:monitor:first_start", LOCK_META,
              "_kombu.binding.celery.pidbox", "_kombu.binding.default", RAN_KEY}


@pytest.fixture
def shared_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def _deployment_env(tmp_path: Path, name: str, url: str) -> dict[str, str]:
    home = tmp_path / name
    home.mkdir()
    policy = DEPLOYMENTS[name]
    schedule = {"fast-heartbeat": {"task": "beatkeeper.heartbeat", "every": 1, "expires": 5},
                "shared": {"task": nt.record.name, "every": 1, "args": [name, policy["outcome"]],
                           "overlap": "skip", "lock_key": ["job"], "lock_ttl": policy["lock_ttl"]}}
    database_url = f"sqlite:///{home / 'history.db'}"  # each deployment its own history
    upgrade_database(database_url)
    return {**platform_env(home, schedule, redis_url=url), "BEATKEEPER_NAMESPACE": name,
            "CELERY_RESULT_BACKEND": url, "BEATKEEPER_TASK_MODULES": nt.__name__, "DATABASE_URL": database_url,
            "BEATKEEPER_DATA_DIR": str(home / "data"), "BEATKEEPER_MONITOR_PORT": str(free_port()),
            "BEATKEEPER_MONITOR_INTERVAL": "0.5"}


def _ran(client: redis.Redis, name: str) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(f"{name}:{RAN_KEY}", 0, -1)]


def _history(database_url: str) -> list[tuple[str, str, str]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(
                select(task_runs.c.entry, task_runs.c.task_id, task_runs.c.status))]
    finally:
        engine.dispose()


def test_two_deployments_on_one_redis_database_never_cross(processes, shared_redis, tmp_path):
    client = redis.Redis.from_url(shared_redis.url, decode_responses=True)
    envs = {name: _deployment_env(tmp_path, name, shared_redis.url) for name in DEPLOYMENTS}
    started = {}
    for name, env in envs.items():
        started[name] = [
            processes.celery("worker", "-n", f"{name}@%h", "--loglevel=INFO", "-Q", "default", "-c", "1",
                             "-P", "solo", name=f"{name}-worker", env=env),
            processes.celery("beat", "--loglevel=INFO", name=f"{name}-beat", env=env),
            processes.start([sys.executable, "-m", "tasks.cli", "monitor"], name=f"{name}-monitor", env=env)]

    seen: set[str] = set()  # every key the database held at any poll (locks and leases come and go)

    def both_ran_the_same_instants() -> bool:
        seen.update(client.keys("*"))
        instants = [{r["fire_at"] for r in _ran(client, name)} for name in DEPLOYMENTS]
        return len(set.intersection(*instants)) >= RUNS_WANTED

    def everything_recorded() -> bool:
        seen.update(client.keys("*"))
        return all(client.hget(f"{name}:{LAST_BEAT_KEY}", "worker") and
                   client.zscore(f"{name}:{HEARTBEATS_KEY}", "monitor") and
                   {row[0] for row in _history(envs[name]["DATABASE_URL"])} >= {"shared", "fast-heartbeat"}
                   for name in DEPLOYMENTS) \
            and client.hexists(f"alpha:{ALERTS_KEY}", "run_failed|shared")

    wait_until(both_ran_the_same_instants, timeout_s=START_TIMEOUT_S, what="`shared` run by both deployments")
    wait_until(everything_recorded, timeout_s=START_TIMEOUT_S, what="heartbeats, history and alpha's alert")
    for proc in (p for procs in started.values() for p in procs):
        assert proc.poll() is None, proc.log_path.read_text()[-3000:]
    seen.update(client.keys("*"))

    # Key by key: each belongs to exactly one deployment, and each deployment holds its own of each.
    owners = {key: [name for name in DEPLOYMENTS if key.startswith(f"{name}:")] for key in seen}
    assert {key: names for key, names in owners.items() if len(names) != 1} == {}
    own = {name: {key.removeprefix(f"{name}:") for key in seen if key.startswith(f"{name}:")} for name in DEPLOYMENTS}
    for name in DEPLOYMENTS:
        assert EACH_HOLDS <= own[name], (name, sorted(EACH_HOLDS - own[name]), "\n".join(sorted(own[name])))

    for name, policy in DEPLOYMENTS.items():
        other = next(n for n in DEPLOYMENTS if n != name)
        ran = _ran(client, name)
        # Each entry ran in its own deployment only: sent by its beat, run by its worker.
        assert {(r["sent_by"], r["ran_in"], r["entry"]) for r in ran} == {(name, name, "shared")}
        # Its heartbeat: its worker ran it; its monitor beats in its own set.
        assert client.hget(f"{name}:{LAST_BEAT_KEY}", "worker").startswith(f"{name}@")
        # Its policies: the lock_ttl its own schedule gave the same-named entry.
        published = json.loads(client.hget(f"{name}:{PUBLISHED_ENTRY_POLICIES_KEY}", "shared"))
        assert published["policy"]["lock_ttl_s"] == policy["lock_ttl"], published
        # Its claims: a record for each instant it ran (the same run ids as the other's, apart).
        for record in ran:
            run_id = f"shared|{record['fire_at']}"
            assert client.hget(f"{name}:{record_key(run_id)}", "task_id") == record["task_id"]
        claimed = {client.hget(key, "task_id") for key in client.keys(f"{name}:{RUN_KEY_PREFIX}shared|*:meta")}
        assert claimed and not claimed & {r["task_id"] for r in _ran(client, other)}
        # Its overlap lock: the fence counts its own runs only (one may be between taking it and recording).
        fence = int(client.hget(f"{name}:{LOCK_META}", "fence"))
        assert len(ran) <= fence <= len(_ran(client, name)) + 1, (name, fence, len(ran))
        # Its history: its database holds its own runs of `shared` only, drained from its own spool.
        rows = [row for row in _history(envs[name]["DATABASE_URL"]) if row[0] == "shared"]
        assert rows and {task_id for _, task_id, _ in rows} <= {r["task_id"] for r in _ran(client, name)}
        assert {status for _, _, status in rows} == {"failure" if policy["outcome"] == nt.FAILING_ARG else "success"}
        assert client.llen(f"{name}:{SPOOL_KEY}") < 20  # drained (by its own worker and monitor)

    # Alerts: alpha's failing `shared` alerts in alpha only; beta's same-named entry never failed.
    assert client.hexists(f"alpha:{ALERTS_KEY}", "run_failed|shared")
    assert not client.hexists(f"beta:{ALERTS_KEY}", "run_failed|shared")
    # Remote control (pub/sub, reply queues) is apart too: each deployment's `inspect` reaches its own worker.
    pings = {name: processes.celery("inspect", "ping", "--timeout", "3", name=f"{name}-ping", env=env)
             for name, env in envs.items()}
    for name, ping in pings.items():
        ping.wait(timeout=START_TIMEOUT_S)
        said = ping.log_path.read_text()
        other = next(n for n in DEPLOYMENTS if n != name)
        assert f"{name}@" in said and f"{other}@" not in said, said
    # Two leaders, one per deployment: each beat holds its own lock, bumped its own epoch once.
    assert {client.hget(f"{name}:{BEAT_EPOCH_KEY}", "fence") for name in DEPLOYMENTS} == {"1"}
    for name in DEPLOYMENTS:
        assert client.get(f"{name}:redbeat::lock")
    for proc in (p for procs in started.values() for p in procs):
        log = proc.log_path.read_text()  # the only tracebacks: alpha's failures on purpose
        assert log.count("Traceback") == log.count("\nRuntimeError: alpha fails on purpose"), log[-3000:]

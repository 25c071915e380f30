"""The monitor against real processes: real Redis, real beat and workers, the real
``beatkeeper monitor`` command. Clocks are injected where a threshold would otherwise be slept out."""
from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request

import pytest

from monitoring.alerts import NotificationKind
from monitoring.db import engine_for
from monitoring.heartbeats import HEARTBEATS_KEY, HeartbeatRun, last_heartbeat, record_heartbeat
from monitoring.history import HistoryStore
from monitoring.metrics import MISSES_KEY, metrics_registry
from monitoring.rules.heartbeat import HeartbeatRule
from monitoring.rules.infrastructure import HistoryRule, RedisRule
from monitoring.rules.missed import WATERMARKS_KEY, MissedRunsRule
from monitoring.server import monitor_wsgi_app, serve_in_thread
from schedules.trigger import from_epoch_us
from tests.monitoring.monitor_fixtures import RecordingSink, make_monitor, specs_of, webhook  # noqa: F401
from tests.servers import RedisServer, free_port, wait_until

pytestmark = pytest.mark.process
FIRING, RESOLVED = NotificationKind.FIRING, NotificationKind.RESOLVED
START_TIMEOUT_S = 60
FAST_HEARTBEAT = {"task": "beatkeeper.heartbeat", "every": 1, "expires": 5, "max_runs_per_hour": 4000}
FAST = {"BEATKEEPER_MIN_INTERVAL": "1", "BEATKEEPER_LOOP_INTERVAL": "1", "BEATKEEPER_DISABLE": "beatkeeper-heartbeat"}


def schedule_env(tmp_path, schedule: dict, **extra: str) -> dict[str, str]:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(schedule))
    return {**FAST, "BEATKEEPER_SCHEDULE": str(path), **extra}


def start_worker(processes, env, name="worker"):
    proc = processes.celery("worker", "--loglevel=INFO", "-Q", "default", "-c", "1", "-P", "solo", "-n",
                            f"{name}@%h", name=name, env=env)
    wait_until(lambda: proc.poll() is None and b" ready." in proc.log_path.read_bytes(), timeout_s=START_TIMEOUT_S,
               what=f"{name} ready")
    return proc


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_stopping_beat_fires_the_heartbeat_alert_in_time_and_restarting_it_resolves(processes, redis_client,
                                                                                     tmp_path):
    env = schedule_env(tmp_path, {"fast-heartbeat": FAST_HEARTBEAT})
    start_worker(processes, env)
    beat = processes.celery("beat", "--loglevel=INFO", name="beat", env=env)
    wait_until(lambda: (hb := last_heartbeat(redis_client)) and hb.entry == "fast-heartbeat", timeout_s=START_TIMEOUT_S,
               what="a beat-dispatched heartbeat")
    sink = RecordingSink()
    specs = specs_of({"fast-heartbeat": FAST_HEARTBEAT})
    monitor = make_monitor(redis_client, specs, sinks=[sink], rules=[RedisRule(), HeartbeatRule()])
    monitor.evaluate(time.time())
    beat.terminate()
    beat.wait(timeout=30)
    # a heartbeat already queued still runs: until the worker has taken and acknowledged every message
    wait_until(lambda: not redis_client.llen("default") and not redis_client.hlen("unacked"), timeout_s=30,
               what="the worker to finish what beat queued")
    last_beat = last_heartbeat(redis_client).scheduled_at
    period_s = monitor.settings.interval_s
    # The injected clock: 3 min after the last heartbeat nothing fires; one evaluation period later it has.
    monitor.evaluate(last_beat + 180)
    monitor.evaluate(last_beat + 180 + period_s)
    monitor.dispatcher.deliver_pending()
    assert [(n.kind, n.at) for n in sink.sent] == [(FIRING, last_beat + 180 + period_s)]
    processes.celery("beat", "--loglevel=INFO", name="beat2", env=env)
    wait_until(lambda: last_heartbeat(redis_client).scheduled_at > last_beat, timeout_s=START_TIMEOUT_S,
               what="a heartbeat from the restarted beat")
    for _ in range(3):
        monitor.evaluate(time.time())
    monitor.dispatcher.deliver_pending()
    assert [n.kind for n in sink.sent] == [FIRING, RESOLVED]


def test_runs_prevented_by_a_stopped_beat_are_reported_missed_once_and_runs_never(processes, redis_client,
                                                                                  tmp_path, sqlite_url):
    # beat's catch-up runs late instants up to loop interval + 5 s = 6 s old; older ones it skips (catchup: skip).
    # A grace of 11 s therefore tells the two apart: late runs arrive within it (with 5 s to spare), skipped never.
    entry = {"task": "beatkeeper.heartbeat", "every": 2, "expires": 30, "catchup": "skip", "max_runs_per_hour": 4000}
    env = schedule_env(tmp_path, {"tick": entry}, DATABASE_URL=sqlite_url)
    start_worker(processes, env)
    beat = processes.celery("beat", "--loglevel=INFO", name="beat", env=env)
    store = HistoryStore(engine_for(sqlite_url), redis_client=redis_client)  # the workers' spool
    sink = RecordingSink()
    monitor = make_monitor(redis_client, specs_of({"tick": entry}), sinks=[sink], history=store,
                           rules=[HistoryRule(), MissedRunsRule()], missed_grace_s=11.0)

    def evaluate_for(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            monitor.evaluate(time.time())
            time.sleep(0.25)

    def resolved() -> bool:
        monitor.evaluate(time.time())
        monitor.dispatcher.deliver_pending()
        return any(n.kind is RESOLVED for n in sink.sent)

    wait_until(lambda: store.drain() and store.count(status="success") >= 1, timeout_s=START_TIMEOUT_S,
               what="a first run of tick")
    evaluate_for(3)
    first_judged_us = int(redis_client.hget(WATERMARKS_KEY, "tick"))
    beat.terminate()
    beat.wait(timeout=30)
    evaluate_for(8)  # with beat's start-up, the instants of the first seconds are > 6 s old when it is back
    processes.celery("beat", "--loglevel=INFO", name="beat2", env=env)
    wait_until(resolved, timeout_s=START_TIMEOUT_S, interval_s=0.25, what="the missed-run alert to resolve")

    assert [n.kind for n in sink.sent] == [FIRING, RESOLVED]
    reported = set(sink.sent[-1].alert.details["instants"])  # the incident's every instant, as it closed
    assert set(sink.sent[0].alert.details["instants"]) <= reported
    ran = {r.fire_at.isoformat() for r in store.query(entry="tick", limit=1000)}
    judged = specs_of({"tick": entry})["tick"].trigger.fires_between(
        from_epoch_us(first_judged_us), from_epoch_us(int(redis_client.hget(WATERMARKS_KEY, "tick"))))
    expected = {t.isoformat() for t in judged} - ran
    assert expected and reported == expected  # every instant without a run, and none that ran
    assert int(redis_client.hget(MISSES_KEY, '["tick"]')) == len(expected)  # each counted once


def test_readyz_follows_redis_down_and_back_without_restarting_the_monitor(processes, tmp_path):
    server = RedisServer(tmp_path / "redis", port=free_port(), appendonly=True).start()
    port = free_port()
    env = schedule_env(tmp_path, {"fast-heartbeat": FAST_HEARTBEAT},
                       REDIS_URL=server.url, CELERY_RESULT_BACKEND=server.url, BEATKEEPER_MONITOR_PORT=str(port),
                       BEATKEEPER_MONITOR_INTERVAL="0.5", BEATKEEPER_ALERT_WORKERS_FOR="0")
    try:
        start_worker(processes, env)
        processes.celery("beat", "--loglevel=INFO", name="beat", env=env)
        processes.start([sys.executable, "-m", "tasks.cli", "monitor"], name="monitor", env=env)
        readyz = f"http://127.0.0.1:{port}/readyz"
        wait_until(lambda: _answers(readyz) == 200, timeout_s=START_TIMEOUT_S, what="the platform ready")
        server.stop()
        code, body = wait_until(lambda: (r := _get_or_none(readyz)) and r[0] == 503 and r, timeout_s=15,
                                what="readyz unhealthy")
        assert not body["checks"]["redis"]["ok"] and "unreachable" in body["checks"]["redis"]["reason"]
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200  # the monitor itself is fine
        server.start()
        code, body = wait_until(lambda: (r := _get_or_none(readyz)) and r[0] == 200 and r, timeout_s=START_TIMEOUT_S,
                                what="readyz healthy again")
        assert all(check["ok"] for check in body["checks"].values())
    finally:
        processes.stop_all()
        server.kill()


def _get_or_none(url: str):
    try:
        return get(url)
    except (urllib.error.URLError, OSError):
        return None


def _answers(url: str) -> int | None:
    reply = _get_or_none(url)
    return None if reply is None else reply[0]


def test_a_restarted_monitor_sends_no_duplicate_for_an_ongoing_incident(processes, redis_client, webhook, tmp_path):
    env = {"BEATKEEPER_MONITOR_PORT": str(free_port()), "BEATKEEPER_MONITOR_INTERVAL": "0.3",
           "BEATKEEPER_INSPECT_TIMEOUT": "0.2",
           "BEATKEEPER_ALERT_WEBHOOK_URL": webhook.url, "BEATKEEPER_SCHEDULE": None, "BEATKEEPER_DISABLE": None}
    record_heartbeat(redis_client, HeartbeatRun(executed_at=time.time() - 1000, worker="w", task_id="old",
                                                scheduled_at=time.time() - 1000))

    def evaluations_pass(count: int) -> None:  # the monitor's own heartbeat moves once per evaluation
        seen = {redis_client.zscore(HEARTBEATS_KEY, "monitor")}
        wait_until(lambda: seen.add(redis_client.zscore(HEARTBEATS_KEY, "monitor")) or len(seen) > count,
                   timeout_s=30, interval_s=0.05, what=f"{count} evaluations")

    first = processes.start([sys.executable, "-m", "tasks.cli", "monitor"], name="monitor1", env=env)
    wait_until(lambda: webhook.kinds("beat_heartbeat"), timeout_s=START_TIMEOUT_S, what="the heartbeat alert")
    first.terminate()
    first.wait(timeout=30)
    processes.start([sys.executable, "-m", "tasks.cli", "monitor"], name="monitor2", env=env)
    evaluations_pass(5)
    assert webhook.kinds("beat_heartbeat") == ["firing"]
    record_heartbeat(redis_client, HeartbeatRun(executed_at=time.time(), worker="w", task_id="new",
                                                scheduled_at=time.time()))
    wait_until(lambda: len(webhook.kinds("beat_heartbeat")) == 2, timeout_s=30, what="the resolve")
    evaluations_pass(3)
    assert webhook.kinds("beat_heartbeat") == ["firing", "resolved"]


def test_the_endpoints_answer_in_process(redis_client):
    monitor = make_monitor(redis_client, specs_of({"fast-heartbeat": FAST_HEARTBEAT}),
                           rules=[RedisRule(), HeartbeatRule()])
    now = time.time()
    record_heartbeat(redis_client, HeartbeatRun(executed_at=now, worker="w", task_id="t", scheduled_at=now))
    monitor.run_once(now)  # one pass of the loop: it takes the lead (the only monitor) and evaluates
    server = serve_in_thread(monitor_wsgi_app(monitor, registry=metrics_registry(redis_client),
                                              ping_client=redis_client))
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        status, body = get(f"{base}/readyz")
        assert status == 503 and body["checks"]["beat"]["ok"] and body["checks"]["redis"]["ok"]
        assert body["checks"]["workers"] == {"ok": False, "reason": "unknown at the latest evaluation: "
                                                                    "workers were not asked"}
        status, body = get(f"{base}/healthz")
        assert status == 200 and body["alive"] and body["role"] == "leader"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            assert 'beatkeeper_heartbeat_age_seconds{component="monitor"}' in response.read().decode()
    finally:
        server.shutdown()
        server.server_close()

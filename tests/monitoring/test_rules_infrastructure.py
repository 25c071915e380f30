"""Redis, the history database and the workers: outages alert, and never look like misses or recoveries."""
from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from monitoring.alerts import NotificationKind
from monitoring.db import engine_for
from monitoring.heartbeats import HeartbeatRun, record_heartbeat
from monitoring.history import HistoryStore
from monitoring.monitor import META_RULES
from monitoring.rules import CeleryWorkers, default_rules
from monitoring.rules.heartbeat import HeartbeatRule
from monitoring.rules.infrastructure import HistoryRule, QueueConsumersRule, RedisRule
from monitoring.rules.missed import MissedRunsRule
from tests.monitoring.monitor_fixtures import (FakeWorkers, RecordingSink, evaluate, make_monitor, register_in_redbeat,
                                               specs_of, ts)
from tests.servers import RedisServer

FIRING, RESOLVED = NotificationKind.FIRING, NotificationKind.RESOLVED
HEARTBEAT = {"beatkeeper-heartbeat": {"task": "beatkeeper.heartbeat", "every": 60}}


def test_redis_down_alerts_and_leaves_every_other_alert_as_it_was(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_connect_timeout=0.5, socket_timeout=1,
                                  retry=Retry(NoBackoff(), 0))
    sink = RecordingSink()
    monitor = make_monitor(client, specs_of(HEARTBEAT), sinks=[sink], rules=[RedisRule(), HeartbeatRule()])
    try:
        record_heartbeat(client, HeartbeatRun(executed_at=ts(0), worker="w", task_id="t", scheduled_at=ts(0)))
        evaluate(monitor, 0)
        evaluate(monitor, 200)  # the heartbeat is stale: fires
        server.stop()
        down = [evaluate(monitor, s) for s in range(205, 260, 5)]
        assert down[0].skipped == {"HeartbeatRule": "Redis is unreachable"}
        server.start()
        record_heartbeat(client, HeartbeatRun(executed_at=ts(260), worker="w", task_id="t2", scheduled_at=ts(260)))
        evaluate(monitor, 265)
    finally:
        server.kill()
    assert [(n.kind, n.alert.rule, n.at) for n in sink.sent] == [
        (FIRING, "beat_heartbeat", ts(200)), (FIRING, "redis_unreachable", ts(205)),
        (RESOLVED, "redis_unreachable", ts(265)), (RESOLVED, "beat_heartbeat", ts(265))]


def test_a_queue_entries_use_without_a_consumer_alerts_until_a_worker_consumes_it(redis_client):
    sink = RecordingSink()
    workers = FakeWorkers({"singleton@h": ["singleton"]})
    specs = specs_of({**HEARTBEAT, "sweep": {"task": "jobs.sweep", "every": 60, "queue": "sweeps"}})
    monitor = make_monitor(redis_client, specs, sinks=[sink], workers=workers, rules=[QueueConsumersRule()])
    evaluate(monitor, 0)
    workers.consumers_map = {"default@h": ["default", "sweeps"]}
    evaluate(monitor, 5)
    assert [(n.kind, n.alert.subject) for n in sink.sent] == [
        (FIRING, "default"), (FIRING, "sweeps"), (RESOLVED, "default"), (RESOLVED, "sweeps")]
    assert "used by entries beatkeeper-heartbeat" in sink.sent[0].alert.summary


def test_a_declared_queue_with_waiting_messages_and_no_consumer_alerts(redis_client):
    redis_client.sadd("_kombu.binding.reports", "reports\x06\x16\x06\x16reports")
    redis_client.sadd("_kombu.binding.idle", "idle\x06\x16\x06\x16idle")
    redis_client.lpush("reports", "{}", "{}")
    sink = RecordingSink()
    evaluate(make_monitor(redis_client, {}, sinks=[sink], workers=FakeWorkers(), rules=[QueueConsumersRule()]), 0)
    [note] = sink.sent
    assert note.alert.subject == "reports" and note.alert.details["pending"] == 2  # "idle" is empty: no alert


def test_real_workers_consuming_every_queue_raise_no_alert(app, redis_client, worker):
    sink = RecordingSink()
    specs = specs_of({**HEARTBEAT, "single": {"task": "jobs.once", "every": 60, "queue": "singleton"}})
    evaluation = evaluate(make_monitor(redis_client, specs, sinks=[sink], workers=CeleryWorkers(app, timeout_s=1.0),
                                       rules=[QueueConsumersRule()]), 0)
    assert sink.sent == []
    assert evaluation.queues["default"]["consumers"] and evaluation.queues["singleton"]["consumers"]


def test_history_down_alerts_and_pauses_the_missed_run_checks(redis_client, tmp_path, sqlite_url):
    register_in_redbeat(redis_client, "tick")
    specs = specs_of({"tick": {"task": "jobs.work", "every": 60}})
    unmigrated = HistoryStore(engine_for(f"sqlite:///{tmp_path / 'empty.db'}"), redis_client=redis_client,
                              spool_key="test:monitor:spool")
    sink = RecordingSink()
    monitor = make_monitor(redis_client, specs, sinks=[sink], history=unmigrated, rules=[HistoryRule(),
                                                                                         MissedRunsRule()])
    evaluation = evaluate(monitor, 0)
    evaluate(monitor, 600)  # ten minutes without a row: not misses while the database is down
    assert evaluation.skipped == {"MissedRunsRule": "the history database is unavailable"}
    assert [(n.kind, n.alert.rule) for n in sink.sent] == [(FIRING, "history_unavailable")]
    assert "no such table" in sink.sent[0].alert.summary


def test_no_two_rules_own_the_same_alert_name():
    # Each rule resolves the alerts of its names: a name owned twice would be resolved by the wrong rule.
    names = [name for rule in default_rules() for name in rule.names] + list(META_RULES)
    assert len(names) == len(set(names))

"""The alert manager: one message when an alert starts, a reminder per repeat period, one when it
clears; the state lives in Redis (so a restart repeats nothing) and in memory while Redis is away."""
from __future__ import annotations

import pytest
import redis

from monitoring.alerts import ALERTS_KEY, Alert, AlertManager, AlertStore, Notification, NotificationKind, Severity
from tests.servers import RedisServer

FIRING, REMINDER, RESOLVED = NotificationKind.FIRING, NotificationKind.REMINDER, NotificationKind.RESOLVED
NOW = 1_780_000_000.0
HOUR = 3600.0


def beat_down(summary: str = "beat's heartbeat is 200 s old") -> Alert:
    return Alert("beat_heartbeat", "beat", Severity.CRITICAL, summary)


def manager_on(client, **kwargs) -> AlertManager:
    return AlertManager(AlertStore(client), repeat_s=HOUR, **kwargs)


def run_cycles(manager: AlertManager, firing: list[Alert], *, start: float, cycles: int, every_s: float = 5.0,
               rules=("beat_heartbeat",)) -> list[Notification]:
    notes = []
    for i in range(cycles):
        notes += manager.reconcile(rules, firing, now=start + i * every_s)
        manager.store.flush()
    return notes


def test_an_alert_that_stays_firing_is_sent_once_however_many_evaluations_pass(redis_client):
    manager = manager_on(redis_client)
    notes = run_cycles(manager, [beat_down()], start=NOW, cycles=200)  # 1000 s, under the repeat period
    assert [n.kind for n in notes] == [FIRING]
    assert notes[0].alert == beat_down() and notes[0].since == NOW


def test_a_reminder_is_sent_each_repeat_period_counted_from_the_last_message(redis_client):
    manager = manager_on(redis_client)
    manager.reconcile(["beat_heartbeat"], [beat_down()], now=NOW)
    assert manager.reconcile(["beat_heartbeat"], [beat_down()], now=NOW + HOUR - 1) == []
    reminder = manager.reconcile(["beat_heartbeat"], [beat_down()], now=NOW + HOUR)
    assert [(n.kind, n.since) for n in reminder] == [(REMINDER, NOW)]
    assert manager.reconcile(["beat_heartbeat"], [beat_down()], now=NOW + 2 * HOUR - 1) == []
    assert [n.kind for n in manager.reconcile(["beat_heartbeat"], [beat_down()], now=NOW + 2 * HOUR)] == [REMINDER]


def test_an_alert_that_clears_is_resolved_once_with_its_start(redis_client):
    manager = manager_on(redis_client)
    run_cycles(manager, [beat_down()], start=NOW, cycles=3)
    notes = run_cycles(manager, [], start=NOW + 100, cycles=50)
    assert [(n.kind, n.since, n.at) for n in notes] == [(RESOLVED, NOW, NOW + 100)]
    assert redis_client.hlen(ALERTS_KEY) == 0


def test_new_details_of_a_firing_alert_are_kept_without_a_message(redis_client):
    manager = manager_on(redis_client)
    manager.reconcile(["beat_heartbeat"], [beat_down("200 s old")], now=NOW)
    assert manager.reconcile(["beat_heartbeat"], [beat_down("260 s old")], now=NOW + 60) == []
    manager.store.flush()
    assert AlertStore(redis_client).active()["beat_heartbeat|beat"].alert.summary == "260 s old"
    resolved = manager.reconcile(["beat_heartbeat"], [], now=NOW + 120)
    # the resolve says it cleared, and keeps the latest state it fired with
    assert resolved[0].alert.summary == "cleared (it said: 260 s old)"
    assert resolved[0].alert.details["fired_with"] == "260 s old"


def test_only_the_rules_that_answered_resolve_their_alerts(redis_client):
    manager = manager_on(redis_client)
    queue = Alert("queue_unconsumed", "default", Severity.CRITICAL, "no worker")
    manager.reconcile(["beat_heartbeat", "queue_unconsumed"], [beat_down(), queue], now=NOW)
    notes = manager.reconcile(["queue_unconsumed"], [], now=NOW + 5)  # the heartbeat rule was not asked
    assert [(n.kind, n.alert.rule) for n in notes] == [(RESOLVED, "queue_unconsumed")]
    assert set(manager.store.active()) == {"beat_heartbeat|beat"}


def test_alerts_are_told_apart_by_rule_and_subject(redis_client):
    manager = manager_on(redis_client)
    first = Alert("missed_run", "nightly", Severity.CRITICAL, "missed")
    second = Alert("missed_run", "hourly", Severity.CRITICAL, "missed")
    notes = manager.reconcile(["missed_run"], [first], now=NOW)
    notes += manager.reconcile(["missed_run"], [first, second], now=NOW + 5)
    assert [(n.kind, n.alert.subject) for n in notes] == [(FIRING, "nightly"), (FIRING, "hourly")]


def test_a_restarted_manager_sends_no_duplicate_and_still_resolves(redis_client):
    first = manager_on(redis_client)
    assert [n.kind for n in run_cycles(first, [beat_down()], start=NOW, cycles=3)] == [FIRING]
    restarted = manager_on(redis_client)  # a new process: nothing in memory
    assert run_cycles(restarted, [beat_down()], start=NOW + 60, cycles=10) == []
    assert [(n.kind, n.since) for n in run_cycles(restarted, [], start=NOW + 200, cycles=3)] == [(RESOLVED, NOW)]


@pytest.mark.parametrize("flapping", [False, True], ids=["steady_alert_fires_after_its_wait",
                                                          "alert_that_clears_restarts_its_wait"])
def test_a_rule_with_a_wait_fires_only_once_the_alert_lasted_that_long(redis_client, flapping):
    manager = manager_on(redis_client, pending_s={"queue_unconsumed": 30.0})
    queue = Alert("queue_unconsumed", "default", Severity.CRITICAL, "no worker")
    assert manager.reconcile(["queue_unconsumed"], [queue], now=NOW) == []
    if flapping:
        assert manager.reconcile(["queue_unconsumed"], [], now=NOW + 10) == []
        assert manager.reconcile(["queue_unconsumed"], [queue], now=NOW + 20) == []
        assert manager.reconcile(["queue_unconsumed"], [queue], now=NOW + 30) == []
        assert [n.kind for n in manager.reconcile(["queue_unconsumed"], [queue], now=NOW + 50)] == [FIRING]
    else:
        assert manager.reconcile(["queue_unconsumed"], [queue], now=NOW + 29) == []
        assert [n.kind for n in manager.reconcile(["queue_unconsumed"], [queue], now=NOW + 30)] == [FIRING]


def test_an_alert_outside_the_reconciled_rules_is_refused(redis_client):
    with pytest.raises(ValueError, match="queue_unconsumed"):
        manager_on(redis_client).reconcile(["beat_heartbeat"], [Alert("queue_unconsumed", "q", Severity.WARNING, "x")],
                                           now=NOW)


def test_state_decided_while_redis_is_away_is_written_when_it_returns(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_connect_timeout=0.5)
    try:
        manager = manager_on(client)
        manager.reconcile(["beat_heartbeat"], [beat_down()], now=NOW)
        assert manager.store.flush()
        redis_alert = Alert("redis_unreachable", "redis", Severity.CRITICAL, "Redis is unreachable")
        server.stop()  # a clean shutdown: the firing heartbeat alert is on disk
        notes = manager.reconcile(["redis_unreachable", "beat_heartbeat"], [redis_alert], now=NOW + 5)
        assert sorted((n.kind, n.alert.rule) for n in notes) == [(FIRING, "redis_unreachable"),
                                                                 (RESOLVED, "beat_heartbeat")]
        assert not manager.store.flush()  # kept in memory
        assert manager.reconcile(["redis_unreachable"], [redis_alert], now=NOW + 10) == []  # no duplicate
        server.start()
        assert set(AlertStore(client).active()) == {"beat_heartbeat|beat"}  # what Redis held before
        assert [n.kind for n in manager.reconcile(["redis_unreachable"], [], now=NOW + 15)] == [RESOLVED]
        assert manager.store.flush()
        assert AlertStore(client).active() == {}  # the outage's changes, then its resolve, all written
    finally:
        server.kill()


def test_notification_text_says_what_and_since_when():
    alert = beat_down()
    firing = Notification(FIRING, alert, at=NOW, since=NOW).text
    reminder = Notification(REMINDER, alert, at=NOW + HOUR, since=NOW).text
    resolved = Notification(RESOLVED, alert, at=NOW + 600, since=NOW).text
    assert firing == "[FIRING critical] beat_heartbeat beat: beat's heartbeat is 200 s old"
    assert reminder.startswith("[STILL FIRING critical] beat_heartbeat beat:")
    assert "since 2026-05-28T20:26:40Z" in reminder
    assert resolved.startswith("[RESOLVED] beat_heartbeat beat:") and "fired 10 min" in resolved
    assert Notification.from_json(Notification(RESOLVED, alert, at=NOW + 600, since=NOW).to_json()).text == resolved

"""No false alerts: pausing the heartbeat for ten minutes (simulated, on the monitor's injected
clock) raises neither heartbeat nor missed-run alerts and keeps /readyz ready, status shows the
pause with its until and reason, and a resolve message states the situation now."""
from __future__ import annotations

import pytest

from monitoring.alerts import NotificationKind
from monitoring.heartbeats import HeartbeatRun, record_heartbeat
from monitoring.pauses import PauseStore
from monitoring.rules.heartbeat import HeartbeatRule
from monitoring.rules.infrastructure import HistoryRule
from monitoring.rules.missed import MissedRunsRule
from monitoring.server import readiness_report
from monitoring.status import gather_status
from tests.monitoring.monitor_fixtures import (KEYS, RecordingSink, a_run, at, evaluate, history, make_monitor,  # noqa: F401
                                               register_in_redbeat, specs_of, ts)

ENTRY = "beatkeeper-heartbeat"
HEARTBEAT = specs_of({ENTRY: {"task": "beatkeeper.heartbeat", "every": 60}})
PAUSED_S, RESUMED_S = 30, 630  # ten minutes


def beat_holds_its_lock(client) -> None:
    client.set(KEYS.redbeat_lock_key, "beat-token", px=3_600_000)  # beat runs all along


def worker_runs_the_heartbeat(client, history, instant_s: float) -> None:
    """What a worker does with the heartbeat beat sent for T0 + ``instant_s``: runs it, or skips it paused."""
    if PauseStore(client).active_pause([ENTRY, "beatkeeper.heartbeat"], now=ts(instant_s + 0.1)):
        history.record(a_run(ENTRY, instant_s, status="skipped_paused", task="beatkeeper.heartbeat"))
        return
    record_heartbeat(client, HeartbeatRun(executed_at=ts(instant_s + 0.1), worker="w1", task_id=f"hb-{instant_s}",
                                          scheduled_at=ts(instant_s), entry=ENTRY))
    history.record(a_run(ENTRY, instant_s, task="beatkeeper.heartbeat"))


@pytest.mark.parametrize("ends_by", ["until", "resume"])
def test_a_ten_minute_pause_of_the_heartbeat_raises_no_alert(redis_client, history, ends_by):
    beat_holds_its_lock(redis_client)
    register_in_redbeat(redis_client, ENTRY)
    sink = RecordingSink()
    monitor = make_monitor(redis_client, HEARTBEAT, sinks=[sink], history=history,
                           rules=[HistoryRule(), HeartbeatRule(), MissedRunsRule()])
    monitor.leadership.hold()
    pauses = PauseStore(redis_client)
    for second in range(0, 1200 + 1, 5):
        if second == PAUSED_S:
            pauses.pause(ENTRY, now=ts(second), until=ts(RESUMED_S) if ends_by == "until" else None,
                         reason="maintenance window", by="ops")
        if second == RESUMED_S and ends_by == "resume":
            assert pauses.resume(ENTRY, now=ts(second))
        if second % 60 == 0:
            worker_runs_the_heartbeat(redis_client, history, second)
        evaluate(monitor, second)
        if second == 300:  # in the middle of the pause
            ready_while_paused = readiness_report(monitor, now=ts(second), ping_client=redis_client)
            listed = {p.name: p.describe() for p in pauses.list_pauses(now=ts(second))}
            [entry] = gather_status(client=redis_client, specs=HEARTBEAT, now=at(second), pauses=listed).entries
            assert entry.state == "paused" and "maintenance window" in entry.paused
            assert ("until resumed" if ends_by == "resume" else "until 2026-06-01T12:10:30+00:00") in entry.paused
    assert [n.text for n in sink.sent] == []  # eleven skipped heartbeats, twenty simulated minutes: not one alert
    assert ready_while_paused["checks"]["beat"]["ok"], ready_while_paused
    assert "paused" in ready_while_paused["checks"]["beat"]["reason"]
    assert readiness_report(monitor, now=ts(1200), ping_client=redis_client)["checks"]["beat"]["ok"]


def test_the_resolve_message_states_the_heartbeat_as_it_is_now(redis_client):
    sink = RecordingSink()
    monitor = make_monitor(redis_client, HEARTBEAT, sinks=[sink], rules=[HeartbeatRule()])
    record_heartbeat(redis_client, HeartbeatRun(executed_at=ts(0), worker="w1", task_id="hb", scheduled_at=ts(0)))
    evaluate(monitor, 400)  # beat is down: no lock, no heartbeat for 400 s
    beat_holds_its_lock(redis_client)
    record_heartbeat(redis_client, HeartbeatRun(executed_at=ts(420), worker="w1", task_id="hb2", scheduled_at=ts(420)))
    evaluate(monitor, 425)
    firing, resolved = sink.sent
    assert firing.kind is NotificationKind.FIRING and "400 s old" in firing.text
    assert resolved.kind is NotificationKind.RESOLVED
    assert "beat's heartbeat is 5 s old (limit 180 s)" in resolved.text and "400 s" not in resolved.text


def test_a_heartbeat_alert_resolved_by_a_pause_says_it_is_paused(redis_client):
    sink = RecordingSink()
    monitor = make_monitor(redis_client, HEARTBEAT, sinks=[sink], rules=[HeartbeatRule()])
    record_heartbeat(redis_client, HeartbeatRun(executed_at=ts(0), worker="w1", task_id="hb", scheduled_at=ts(0)))
    beat_holds_its_lock(redis_client)
    evaluate(monitor, 400)
    PauseStore(redis_client).pause("beatkeeper.heartbeat", now=ts(405), until=ts(4000), reason="moving workers")
    evaluate(monitor, 410)
    firing, resolved = sink.sent
    assert firing.kind is NotificationKind.FIRING and resolved.kind is NotificationKind.RESOLVED
    assert "the heartbeat is paused" in resolved.text and "moving workers" in resolved.text
    assert "400 s" not in resolved.text


def test_instants_due_while_an_entry_is_paused_are_never_missed(redis_client, history):
    specs = specs_of({"feed-sync": {"task": "jobs.sync", "every": 60}})
    register_in_redbeat(redis_client, "feed-sync")
    sink = RecordingSink()
    monitor = make_monitor(redis_client, specs, sinks=[sink], history=history, rules=[HistoryRule(), MissedRunsRule()])
    pauses = PauseStore(redis_client)
    evaluate(monitor, 0)
    pauses.pause("jobs.sync", now=ts(30), reason="feed outage")  # the task: every entry running it
    for second in range(5, 600, 5):  # ten minutes paused; no run on record (their messages expired, say)
        evaluate(monitor, second)
    assert pauses.resume("jobs.sync", now=ts(600))
    for second in range(600, 900, 5):
        if second % 60 == 0:
            history.record(a_run("feed-sync", second, task="jobs.sync"))
        evaluate(monitor, second)
    assert sink.sent == []
    history.record(a_run("feed-sync", 900, task="jobs.sync"))
    evaluate(monitor, 1200)  # after the pause, an instant with no run is a miss again
    [missed] = sink.sent
    assert missed.alert.rule == "missed_run"
    assert missed.alert.details["instants"] == [at(s).isoformat() for s in range(960, 1140 + 1, 60)]

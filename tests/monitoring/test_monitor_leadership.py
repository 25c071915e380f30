"""Two monitors on one Redis (for availability): one leads and alerts, the other stands by and
takes over -- without a duplicate alert -- when the leader stops or dies."""
from __future__ import annotations

from monitoring.alerts import Alert, NotificationKind, Severity
from monitoring.leadership import LEADER_KEY, Leadership
from monitoring.rules.base import Rule
from monitoring.server import readiness_report
from tests.monitoring.monitor_fixtures import RecordingSink, make_monitor, ts
from tests.servers import wait_until


class AlwaysFiring(Rule):
    names = ("always",)

    def evaluate(self, ctx) -> list[Alert]:
        return [Alert("always", "subject", Severity.WARNING, "fires on every evaluation")]


def two_monitors(redis_client):
    sinks = RecordingSink("a"), RecordingSink("b")
    monitors = [make_monitor(redis_client, {}, sinks=[sink], rules=[AlwaysFiring()]) for sink in sinks]
    return monitors, sinks


def pass_of(monitor, seconds: float):
    evaluation = monitor.run_once(ts(seconds))
    monitor.dispatcher.deliver_pending()
    return evaluation


def test_one_of_two_monitors_leads_and_only_it_alerts(redis_client):
    (first, second), (sink_a, sink_b) = two_monitors(redis_client)
    for second_s in range(0, 50, 5):
        assert pass_of(first, second_s) is not None
        assert pass_of(second, second_s) is None  # standing by: no evaluation at all
    assert sink_a.kinds("always") == [NotificationKind.FIRING] and sink_b.sent == []
    assert (first.liveness()["role"], second.liveness()["role"]) == ("leader", "standby")
    ready = readiness_report(second, now=ts(50), ping_client=redis_client)
    assert ready["role"] == "standby" and set(ready["checks"]) == {"redis"} and ready["ready"]
    assert set(readiness_report(first, now=ts(50), ping_client=redis_client)["checks"]) == {"redis", "beat", "workers"}


def test_the_standby_takes_over_a_stopped_leader_without_alerting_again(redis_client):
    (first, second), (sink_a, sink_b) = two_monitors(redis_client)
    pass_of(first, 0)
    pass_of(second, 0)
    first.leadership.release()  # a clean stop hands the lead over at once
    evaluation = pass_of(second, 5)
    assert evaluation is not None and [a.rule for a in evaluation.firing] == ["always"]
    assert sink_a.kinds("always") == [NotificationKind.FIRING] and sink_b.sent == []  # already firing: no repeat


def test_the_standby_takes_over_a_dead_leader_within_its_lease_and_the_old_leader_stands_down(redis_client):
    (first, second), (sink_a, sink_b) = two_monitors(redis_client)
    first.leadership = Leadership(redis_client, lease_s=0.5)  # short, so the test waits half a second
    pass_of(first, 0)
    assert redis_client.pttl(LEADER_KEY) > 0
    # the leader hangs (no more passes): its lease lapses and the standby leads
    wait_until(lambda: pass_of(second, 5) is not None, timeout_s=5, interval_s=0.05, what="the standby to lead")
    assert pass_of(first, 10) is None and first.liveness()["role"] == "standby"
    assert sink_b.sent == [] and sink_a.kinds("always") == [NotificationKind.FIRING]


def test_a_leader_whose_lease_vanished_with_nobody_else_takes_it_back_at_once(redis_client):
    (first, _), _ = two_monitors(redis_client)
    pass_of(first, 0)
    redis_client.delete(LEADER_KEY)  # Redis restarted without the key
    assert pass_of(first, 5) is not None and first.leadership.leading

"""The monitor's own failures alert too: a rule that raises, a schedule it cannot load, a sink that fails."""
from __future__ import annotations

from monitoring.alerts import Alert, NotificationKind, Severity
from monitoring.monitor import Monitor, MonitorSettings
from monitoring.rules.base import Rule
from monitoring.rules.heartbeat import HeartbeatRule
from monitoring.sinks import Dispatcher, LogSink
from schedules.errors import ConfigFileError
from tests.monitoring.monitor_fixtures import KEYS, RecordingSink, evaluate, make_monitor, specs_of

FIRING, RESOLVED = NotificationKind.FIRING, NotificationKind.RESOLVED
SPECS = specs_of({"sync": {"task": "jobs.sync", "every": 60}})


class Flaky(Rule):
    """Raises while ``broken``; otherwise fires one alert."""

    names = ("flaky",)
    broken = True

    def evaluate(self, ctx):
        if self.broken:
            raise KeyError("boom")
        return [Alert("flaky", "x", Severity.WARNING, "fine")]


def test_a_rule_that_raises_alerts_and_the_other_rules_still_run(redis_client):
    sink, flaky = RecordingSink(), Flaky()
    monitor = make_monitor(redis_client, SPECS, sinks=[sink], rules=[flaky, HeartbeatRule()])
    evaluation = evaluate(monitor, 0)
    evaluate(monitor, 5)
    flaky.broken = False
    evaluate(monitor, 10)
    assert evaluation.errors == {"Flaky": "KeyError: 'boom'"}
    assert [(n.kind, n.alert.rule, n.alert.subject) for n in sink.sent] == [
        (FIRING, "monitor_rule_failed", "Flaky"), (FIRING, "flaky", "x"), (RESOLVED, "monitor_rule_failed", "Flaky")]


def test_a_schedule_that_stops_loading_alerts_and_the_last_good_one_is_kept(redis_client):
    sink = RecordingSink()
    loads = {"ok": True}

    def load_specs(_now):
        if not loads["ok"]:
            raise ConfigFileError("/etc/schedule.yaml", "line 3: mapping values are not allowed here")
        return SPECS

    monitor = Monitor(client=redis_client, load_specs=load_specs, settings=MonitorSettings(schedule_refresh_s=0.001),
                      keys=KEYS, rules=[], dispatcher=Dispatcher([LogSink(), sink], client=redis_client))
    evaluate(monitor, 0)
    loads["ok"] = False
    evaluate(monitor, 5)
    assert monitor.specs == SPECS
    loads["ok"] = True
    evaluate(monitor, 10)
    assert [(n.kind, n.alert.rule) for n in sink.sent] == [(FIRING, "schedule_unloadable"),
                                                           (RESOLVED, "schedule_unloadable")]
    assert "/etc/schedule.yaml" in sink.sent[0].alert.summary


def test_a_sink_that_keeps_failing_is_reported_through_the_others(redis_client):
    pager, mailbox = RecordingSink("pager", failures=10**6), RecordingSink("mailbox")
    monitor = make_monitor(redis_client, SPECS, sinks=[pager, mailbox], rules=[Flaky()])
    evaluate(monitor, 0)  # the rule failure goes out; the pager drops it after 3 tries
    evaluate(monitor, 5)
    assert [(n.alert.rule, n.alert.subject) for n in mailbox.sent] == [("monitor_rule_failed", "Flaky"),
                                                                       ("alert_sink_failing", "pager")]
    assert "pager down" in mailbox.sent[1].alert.summary

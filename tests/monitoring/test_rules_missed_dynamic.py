"""The monitor's missed-run rule judges dynamic entries as it judges file entries: a due instant of
one without a run is reported once, with its instant (real Redis, real SQLite history, clock T0 + s)."""
from __future__ import annotations

from monitoring.alerts import NotificationKind
from monitoring.rules.infrastructure import HistoryRule
from monitoring.rules.missed import MissedRunsRule
from tasks.dynamic.entries import DynamicEntries
from tasks.dynamic.specs import dynamic_specs
from tests.monitoring.monitor_fixtures import (T0, RecordingSink, a_run, at, evaluate, history,  # noqa: F401
                                               make_monitor, ts)

TASK = "beatkeeper.heartbeat"


def test_a_missed_instant_of_a_dynamic_entry_is_reported_once_with_its_instant(app, redis_client, history,
                                                                              monkeypatch):
    monkeypatch.setattr(app, "now", lambda: T0)
    entries = DynamicEntries.for_app(app)
    entries.put("dyn:tick", {"task": TASK, "every": 60})
    try:
        specs = dynamic_specs(redis_client, T0)  # what the monitor's schedule reader adds (registered_specs)
        sink = RecordingSink()
        monitor = make_monitor(redis_client, specs, sinks=[sink], history=history,
                               rules=[HistoryRule(), MissedRunsRule()])
        evaluate(monitor, 0)
        history.write([a_run("dyn:tick", s, task=TASK) for s in range(60, 601, 60) if s != 180])
        for second in range(5, 700, 5):
            evaluate(monitor, second)
        assert [(n.kind, n.alert.subject, n.at) for n in sink.sent] == [
            (NotificationKind.FIRING, "dyn:tick", ts(240)), (NotificationKind.RESOLVED, "dyn:tick", ts(300))]
        assert sink.sent[0].alert.details["instants"] == [at(180).isoformat()]
    finally:
        entries.remove_prefix("")

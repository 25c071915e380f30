"""The worker takes a run's policy from what beat published, never from the message (issue 13),
and a policy that cannot be used still fails on record (issue 14). Real Redis, real worker."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from celery import states

from monitoring.alerts import NotificationKind
from monitoring.metrics import metrics_registry
from monitoring.rules.infrastructure import HistoryRule
from monitoring.rules.runs import FailedRunRule
from tasks import headers
from tests.app_wiring import set_published_policies
from tasks.policy import PublishedPolicies, RunPolicy, publish_entry_policies
from tests.run_states import run_state
from tests.monitoring.databases import app_history, drained_records, sqlite_url  # noqa: F401
from tests.monitoring.monitor_fixtures import RecordingSink, make_monitor
from tests.servers import wait_until
from tests.tasks import guarded_tasks as gt
from tests.tasks import history_tasks as ht
from tests.tasks.conftest import publish_entry

FORGED_ALLOW = {"beatkeeper_policy": json.dumps({"overlap": "allow"})}  # the header beat once sent


def _second_run_while_the_first_holds_the_lock(key: str, probe_for, **second_options):
    probe = probe_for(key)
    probe.block()
    first = gt.probe.apply_async((key,), {"record": True})
    wait_until(lambda: probe.entered(), timeout_s=15, what="the first run to start")
    second = gt.probe.apply_async((key,), {"record": True}, **second_options)
    # Skipped (a terminal state), or inside the body beside the first (the probe is blocked).
    wait_until(lambda: second.state not in (states.PENDING, states.STARTED) or len(probe.entered()) == 2,
               timeout_s=15, what="the second run to be skipped or to enter")
    probe.unblock()
    first.get(timeout=15)
    entered = len(probe.entered())
    wait_until(lambda: probe.ran() == entered, timeout_s=15, what="every run that entered to finish")
    return probe, second


def test_a_forged_policy_header_does_not_bypass_the_lock(guard_only, worker, probe_for):
    """A hand-sent {"overlap": "allow"} header used to run beside the lock holder."""
    probe, second = _second_run_while_the_first_holds_the_lock("forged", probe_for, headers=FORGED_ALLOW)
    assert run_state(second) == "SKIPPED_OVERLAP"
    assert (probe.ran(), probe.violations()) == (1, 0)


def test_an_entry_published_for_another_task_lends_no_policy(guard_only, app, redis_client, worker, probe_for):
    set_published_policies(app, PublishedPolicies(redis_client, refresh_s=0))
    publish_entry("loose-entry", gt.allow_probe, overlap="allow")
    sent = {**headers.dispatch_headers("loose-entry", _now()), **FORGED_ALLOW}
    probe, second = _second_run_while_the_first_holds_the_lock("borrowed", probe_for, headers=sent)
    assert run_state(second) == "SKIPPED_OVERLAP" and probe.violations() == 0


def test_the_published_entry_policy_is_what_a_scheduled_run_follows(guard_only, app, redis_client, worker, probe_for):
    set_published_policies(app, PublishedPolicies(redis_client, refresh_s=0))
    publish_entry("parallel-entry", gt.probe, overlap="allow")
    probe, second = _second_run_while_the_first_holds_the_lock(
        "parallel", probe_for, headers=headers.dispatch_headers("parallel-entry", _now()))
    assert second.state == states.SUCCESS and probe.ran() == 2


def test_a_bad_published_policy_is_a_recorded_failure_with_an_alert(app, app_history, redis_client, worker):
    """lock_ttl 5000 published by a beat with a higher cap: the run failed in build_run, unrecorded."""
    set_published_policies(app, PublishedPolicies(redis_client, refresh_s=0))
    publish_entry_policies(redis_client, {ht.ok.name: RunPolicy(lock_ttl_s=5000)})
    sink = RecordingSink()
    monitor = make_monitor(redis_client, {}, sinks=[sink], history=app_history, rules=[HistoryRule(), FailedRunRule()])
    monitor.evaluate(time.time())  # the monitor was up before the run
    result = ht.ok.delay("stale-policy")
    wait_until(result.ready, timeout_s=20, what="the run to end")
    assert result.state == states.FAILURE and "lock_ttl_s=5000" in str(result.result)
    [record] = drained_records(app_history, expected=1, task=ht.ok.name)
    assert (record.status, record.error_type) == ("failure", "PolicyError")
    assert "exceeds the lock TTL cap of 3600 s" in record.error_message
    assert redis_client.get(ht.ran_key("stale-policy")) is None  # the body never ran under a guessed policy
    failures = metrics_registry(redis_client).get_sample_value(
        "beatkeeper_schedule_runs_total", {"entry": "", "name": ht.ok.name, "status": "failure"})
    assert failures == 1
    monitor.evaluate(time.time() + 5)
    monitor.dispatcher.deliver_pending()
    assert [(n.kind, n.alert.subject) for n in sink.sent] == [(NotificationKind.FIRING, ht.ok.name)]
    assert "PolicyError" in sink.sent[0].alert.summary


def _now() -> datetime:
    return datetime.now(timezone.utc)

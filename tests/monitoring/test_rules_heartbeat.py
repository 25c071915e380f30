"""The beat heartbeat rule: fires past the limit, says why, spares a fresh install its grace."""
from __future__ import annotations

import pytest

from monitoring.heartbeats import HeartbeatRun, record_heartbeat
from monitoring.rules.base import RuleContext
from monitoring.rules.heartbeat import HeartbeatRule
from monitoring.rules.settings import RuleSettings
from tests.monitoring.monitor_fixtures import KEYS, specs_of, ts

HEARTBEAT = specs_of({"beatkeeper-heartbeat": {"task": "beatkeeper.heartbeat", "every": 60}})
LIMIT_S = 180.0


def context(client, now_s: float, *, specs=HEARTBEAT, first_start_s: float = -10_000) -> RuleContext:
    return RuleContext(now=ts(now_s), client=client, specs=specs, settings=RuleSettings(heartbeat_max_age_s=LIMIT_S),
                       keys=KEYS, first_start=ts(first_start_s))


def heartbeat_at(client, scheduled_s: float, *, executed_s: float | None = None) -> None:
    executed = ts(scheduled_s if executed_s is None else executed_s)
    record_heartbeat(client, HeartbeatRun(executed_at=executed, worker="w1", task_id="t", scheduled_at=ts(scheduled_s)))


@pytest.mark.parametrize("age_s, fires", [(0, False), (LIMIT_S, False), (LIMIT_S + 1, True), (3600, True)],
                         ids=["fresh_is_quiet", "exactly_the_limit_is_quiet", "past_the_limit_fires",
                              "an_hour_old_fires"])
def test_the_alert_fires_only_past_the_limit(redis_client, age_s, fires):
    heartbeat_at(redis_client, 0)
    alerts = HeartbeatRule().evaluate(context(redis_client, age_s))
    assert bool(alerts) is fires
    if fires:
        assert alerts[0].subject == "beat" and alerts[0].details["age_s"] == age_s
        assert f"{age_s:.0f} s old (limit 180 s)" in alerts[0].summary


def test_the_cause_says_beat_is_down_when_no_beat_holds_its_lock(redis_client):
    heartbeat_at(redis_client, 0)
    [alert] = HeartbeatRule().evaluate(context(redis_client, 400))
    assert alert.details["cause"] == "no beat holds redbeat::lock: beat is not running"


def test_the_cause_points_at_workers_when_beat_holds_its_lock(redis_client):
    heartbeat_at(redis_client, 0)
    redis_client.set(KEYS.redbeat_lock_key, "beat-token", px=30_000)
    [alert] = HeartbeatRule().evaluate(context(redis_client, 400))
    assert "no worker ran the heartbeat" in alert.details["cause"]


def test_a_fresh_install_gets_the_limit_from_the_monitors_first_start(redis_client):
    rule = HeartbeatRule()
    assert rule.evaluate(context(redis_client, LIMIT_S, first_start_s=0)) == []
    [alert] = rule.evaluate(context(redis_client, LIMIT_S + 5, first_start_s=0))
    assert alert.details["age_s"] is None and "no beat heartbeat recorded in the 185 s" in alert.summary


def test_no_alert_when_no_registered_entry_runs_the_heartbeat_task(redis_client):
    heartbeat_at(redis_client, 0)
    others = specs_of({"report": {"task": "jobs.report", "every": 60}})
    assert HeartbeatRule().evaluate(context(redis_client, 3600, specs=others)) == []


def test_the_age_is_beats_scheduled_instant_not_when_a_worker_ran_it(redis_client):
    heartbeat_at(redis_client, 0, executed_s=300)  # a backlog: run 5 min after beat scheduled it
    [alert] = HeartbeatRule().evaluate(context(redis_client, 301))
    assert alert.details["age_s"] == 301 and alert.details["worker_age_s"] == 1

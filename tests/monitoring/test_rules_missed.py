"""Missed runs: each due instant without a run is reported exactly once, with its instant; an entry
that ran is never reported; a restart neither repeats nor skips; nothing before registration counts.

Real Redis and a real (SQLite) history; the clock is injected (T0 + seconds)."""
from __future__ import annotations

import json
import logging

import pytest

from monitoring.alerts import NotificationKind
from monitoring.metrics import MISSES_KEY
from monitoring.rules.infrastructure import HistoryRule
from monitoring.rules.missed import WATERMARKS_KEY, MissedRunsRule, grace_s
from tests.monitoring.monitor_fixtures import (KEYS, RecordingSink, a_run, at, evaluate, history,  # noqa: F401
                                               make_monitor, register_in_redbeat, specs_of, ts)

FIRING, RESOLVED = NotificationKind.FIRING, NotificationKind.RESOLVED
EVERY_MINUTE = {"tick": {"task": "jobs.work", "every": 60}, "steady": {"task": "jobs.work", "every": 60}}


def misses(client, entry: str) -> int:
    return int(client.hget(MISSES_KEY, json.dumps([entry], separators=(",", ":"))) or 0)


def missed_monitor(client, history, specs, sink=None, **settings):
    return make_monitor(client, specs, sinks=[sink] if sink else [], history=history,
                        rules=[HistoryRule(), MissedRunsRule()], **settings)


def run(monitor, seconds):
    for second in seconds:
        evaluate(monitor, second)


@pytest.fixture
def minutely(redis_client, history):
    """Two every-minute entries registered at T0; the monitor first sees them at T0."""
    register_in_redbeat(redis_client, "tick", "steady")
    sink = RecordingSink()
    monitor = missed_monitor(redis_client, history, specs_of(EVERY_MINUTE), sink)
    evaluate(monitor, 0)
    return monitor, sink


def test_a_prevented_run_is_reported_once_with_its_instant_and_a_run_entry_never(redis_client, history, minutely,
                                                                                 caplog):
    monitor, sink = minutely
    history.write([a_run("steady", s) for s in range(60, 601, 60)])
    history.write([a_run("tick", s) for s in range(60, 601, 60) if s != 180])  # 12:03 never ran
    with caplog.at_level(logging.WARNING, logger="monitoring.rules.missed"):
        run(monitor, range(5, 700, 5))
    assert [(n.kind, n.alert.subject, n.at) for n in sink.sent] == [(FIRING, "tick", ts(240)),
                                                                     (RESOLVED, "tick", ts(300))]
    firing = sink.sent[0].alert
    assert firing.details["instants"] == [at(180).isoformat()] and firing.details["count"] == 1
    assert "2026-06-01T12:03:00+00:00 (2026-06-01T12:03:00Z)" in firing.summary
    assert misses(redis_client, "tick") == 1 and misses(redis_client, "steady") == 0
    logged = [r.getMessage() for r in caplog.records if "missed run" in r.getMessage()]
    assert logged == ["missed run: entry tick scheduled at 2026-06-01T12:03:00+00:00 (2026-06-01T12:03:00Z): "
                      "no run recorded"]


def test_an_instant_is_judged_only_once_its_grace_has_passed(redis_client, minutely):
    monitor, sink = minutely
    run(monitor, [119])  # 12:01 is due at 60, its grace ends at 120
    assert sink.sent == [] and misses(redis_client, "tick") == 0
    run(monitor, [120])
    assert [n.alert.details["instants"] for n in sink.sent if n.alert.subject == "tick"] == [[at(60).isoformat()]]


def test_a_restarted_monitor_neither_repeats_nor_skips_a_miss(redis_client, history, minutely):
    first, first_sink = minutely
    history.write([a_run("steady", s) for s in range(60, 601, 60)])
    history.write([a_run("tick", s) for s in range(60, 601, 60) if s not in (180, 420)])
    run(first, range(5, 251, 5))  # 12:03 judged missed; the process then dies
    second_sink = RecordingSink()
    second = missed_monitor(redis_client, history, specs_of(EVERY_MINUTE), second_sink)
    run(second, range(255, 700, 5))
    assert [(n.kind, n.at) for n in first_sink.sent] == [(FIRING, ts(240))]
    assert [(n.kind, n.alert.details["instants"][-1]) for n in second_sink.sent] == [
        (RESOLVED, at(180).isoformat()), (FIRING, at(420).isoformat()), (RESOLVED, at(420).isoformat())]
    assert misses(redis_client, "tick") == 2


def test_nothing_before_the_entry_was_first_seen_registered_is_judged(redis_client, history):
    register_in_redbeat(redis_client, "tick")
    monitor = missed_monitor(redis_client, history, specs_of({"tick": EVERY_MINUTE["tick"]}))
    run(monitor, [10_000])  # a year of due instants before this, none on record: no alarm for a fresh install
    assert misses(redis_client, "tick") == 0
    run(monitor, range(10_005, 10_200, 5))  # 10_020 and 10_080 are due after it and judged by 10_140
    assert misses(redis_client, "tick") == 2


def test_an_entry_beat_has_not_registered_is_not_judged(redis_client, history):
    monitor = missed_monitor(redis_client, history, specs_of({"tick": EVERY_MINUTE["tick"]}))
    run(monitor, range(0, 600, 5))
    assert misses(redis_client, "tick") == 0 and not redis_client.hexists(WATERMARKS_KEY, "tick")


def test_an_entry_that_leaves_redbeat_loses_its_watermark_and_starts_afresh(redis_client, history, minutely):
    monitor, _ = minutely
    redis_client.zrem(KEYS.redbeat_schedule_key, KEYS.redbeat_prefix + "tick")  # kill-switched at beat's restart
    run(monitor, [5])
    assert not redis_client.hexists(WATERMARKS_KEY, "tick")
    register_in_redbeat(redis_client, "tick")  # switched back on an hour later
    run(monitor, [3600, 3605])
    assert misses(redis_client, "tick") == 0  # the hour it was off is not a miss


@pytest.mark.parametrize("status, missed", [("expired", True), ("skipped_paused", False), ("skipped_overlap", False),
                                            ("skipped_budget", False), ("failure", False), ("lost", False)],
                         ids=["expired_run_is_a_miss", "paused_run_is_not_a_miss", "overlap_skip_is_not_a_miss",
                              "budget_skip_is_not_a_miss", "failed_run_is_not_a_miss", "lost_run_is_not_a_miss"])
def test_which_recorded_outcomes_count_as_missed(redis_client, history, minutely, status, missed):
    monitor, _ = minutely
    history.write([a_run("tick", 60, status=status)])
    run(monitor, [125])
    assert misses(redis_client, "tick") == int(missed)


def test_a_run_still_holding_its_lock_is_waited_for_not_reported(redis_client, history, minutely):
    monitor, sink = minutely
    lock = KEYS.lock_prefix + "jobs.work:args=abc"
    redis_client.set(lock, "token", px=60_000)
    redis_client.hset(lock + KEYS.lock_meta_suffix, "holder", json.dumps({"entry": "tick", "locked_at": ts(60.2)}))
    history.write([a_run("tick", s) for s in range(120, 601, 60)])
    run(monitor, range(125, 300, 5))  # 12:01's run is long: its row is not there, its lock is
    assert misses(redis_client, "tick") == 0
    redis_client.delete(lock)
    history.write([a_run("tick", 60, took_s=250)])  # it ends, and its row arrives
    run(monitor, range(300, 400, 5))
    assert misses(redis_client, "tick") == 0 and [n for n in sink.sent if n.alert.subject == "tick"] == []


def test_a_clock_stepping_back_judges_nothing_twice(redis_client, minutely):
    monitor, _ = minutely
    run(monitor, [300])
    first = misses(redis_client, "tick")
    run(monitor, [100, 200, 300])
    assert first == 4 and misses(redis_client, "tick") == 4  # 12:01..12:04 (12:05's grace ends at 360)


@pytest.mark.parametrize("entry, instant_s, expected_s", [
    ({"task": "t", "every": 60}, 60, 60.0),
    ({"task": "t", "every": 3600}, 3600, 360.0),
    ({"task": "t", "cron": "0 3 * * *"}, 15 * 3600, 8640.0),
    ({"task": "t", "every": 60, "overlap": "allow", "max_runtime": 300}, 60, 360.0),
    ({"task": "t", "every": 60, "max_runtime": 300}, 60, 60.0),
], ids=["grace_is_60s_for_short_intervals", "grace_is_a_tenth_of_an_hourly_interval",
        "grace_is_a_tenth_of_a_daily_cron", "an_entry_without_lock_waits_its_max_runtime_too",
        "an_entry_with_a_lock_does_not_add_its_runtime"])
def test_grace_is_the_larger_of_a_minute_and_a_tenth_of_the_interval(entry, instant_s, expected_s):
    spec = specs_of({"e": entry})["e"]
    assert grace_s(spec, at(instant_s), min_grace_s=60.0, fraction=0.1) == expected_s


def test_a_daily_job_that_did_not_run_is_reported_after_its_grace(redis_client, history):
    register_in_redbeat(redis_client, "nightly")
    sink = RecordingSink()
    monitor = missed_monitor(redis_client, history, specs_of({"nightly": {"task": "jobs.work", "cron": "0 3 * * *",
                                                                            "timezone": "Australia/Sydney"}}), sink)
    run(monitor, [0])  # 12:00 UTC = 22:00 Sydney; 03:00 Sydney is 17:00 UTC
    run(monitor, [5 * 3600 + 8639])
    assert sink.sent == []
    run(monitor, [5 * 3600 + 8640])
    [alert] = [n.alert for n in sink.sent]
    assert "2026-06-02T03:00:00+10:00 (2026-06-01T17:00:00Z)" in alert.summary

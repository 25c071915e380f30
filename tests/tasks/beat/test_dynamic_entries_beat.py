"""Dynamic entries in the real scheduler on an injected clock: picked up without a restart,
replaced (old instants never fire), removed, one-offs gone once dispatched, kept across restarts,
and their catch-up policy applied."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tasks.dynamic.entries import ENTRIES_KEY, DynamicEntries
from tests.tasks.beat.harness import BeatDriver, utc
from tests.monitoring.databases import app_history, sqlite_url  # noqa: F401  (fixtures)
from tests.tasks import history_tasks as ht  # registered before the worker fixture starts

START = utc(2026, 11, 2, 0, 0, 30)
FILE = {"file-minutely": {"task": "beatkeeper.heartbeat", "every": 60}}
ENV = {"BEATKEEPER_MAX_RUNS_PER_HOUR": "100000"}


def _driver(app, monkeypatch, tmp_path) -> BeatDriver:
    return BeatDriver(app, monkeypatch, tmp_path, FILE, start=START, max_interval_s=5, env=ENV)


@pytest.fixture(autouse=True)
def _no_dynamic_entries_left(app):
    yield
    DynamicEntries.for_app(app).remove_prefix("")


def test_entries_added_while_beat_runs_fire_at_their_instants_once(app, redis_client, monkeypatch, tmp_path):
    driver = _driver(app, monkeypatch, tmp_path)
    driver.run_until(START + timedelta(seconds=10))
    entries = DynamicEntries.for_app(app)
    ats = {f"d:{i}": START + timedelta(seconds=60 + i) for i in range(20)}
    for name, at in ats.items():
        entries.put(name, {"task": "beatkeeper.heartbeat", "at": at.strftime("%Y-%m-%dT%H:%M:%S"), "timezone": "UTC"})
    entries.put("d:every", {"task": "beatkeeper.heartbeat", "every": 120})
    driver.run_until(START + timedelta(minutes=3))
    for name, at in ats.items():
        assert driver.fires_of(name) == [at], name
    assert driver.fires_of("d:every") == [utc(2026, 11, 2, 0, 2)]
    assert len(set(driver.sent)) == len(driver.sent)
    # one-offs left once dispatched; the repeating one stays, in every store
    assert entries.names() == ["d:every"]
    assert redis_client.hkeys(ENTRIES_KEY) == ["d:every"]
    assert not any(redis_client.exists(f"redbeat:d:{i}") for i in range(20))


def test_replaced_entry_never_fires_its_old_instants_and_removed_ones_never_fire(app, redis_client, monkeypatch,
                                                                                 tmp_path):
    driver = _driver(app, monkeypatch, tmp_path)
    entries = DynamicEntries.for_app(app)
    old, new = START + timedelta(seconds=60), START + timedelta(seconds=120)
    entries.put("r:1", {"task": "beatkeeper.heartbeat", "at": old.strftime("%Y-%m-%dT%H:%M:%S")})
    entries.put("r:2", {"task": "beatkeeper.heartbeat", "at": old.strftime("%Y-%m-%dT%H:%M:%S")})
    entries.put("x:1", {"task": "beatkeeper.heartbeat", "every": 30})
    driver.run_until(START + timedelta(seconds=20))
    entries.put("r:1", {"task": "beatkeeper.heartbeat", "at": new.strftime("%Y-%m-%dT%H:%M:%S")})
    assert entries.remove("r:2") is True
    assert entries.remove("r:2") is False
    driver.run_until(START + timedelta(seconds=40))
    assert entries.remove_prefix("x:") == 1
    driver.run_until(START + timedelta(minutes=4))
    assert driver.fires_of("r:1") == [new]
    assert driver.fires_of("r:2") == []
    assert driver.fires_of("x:1") == [START + timedelta(seconds=30)]


def test_dynamic_entries_survive_a_beat_restart_and_catch_up_by_their_policy(app, redis_client, monkeypatch,
                                                                              tmp_path):
    driver = _driver(app, monkeypatch, tmp_path)
    entries = DynamicEntries.for_app(app)
    entries.put("c:latest", {"task": "beatkeeper.heartbeat", "every": 60, "catchup": "latest"})
    entries.put("c:skip", {"task": "beatkeeper.heartbeat", "every": 60, "catchup": "skip"})
    driver.run_until(START + timedelta(seconds=100))
    before = [utc(2026, 11, 2, 0, 1), utc(2026, 11, 2, 0, 2)]
    assert driver.fires_of("c:latest") == driver.fires_of("c:skip") == before
    driver.clock.now = START + timedelta(minutes=10, seconds=5)  # down for 10 minutes
    driver.restart()
    assert entries.names() == ["c:latest", "c:skip"]
    driver.scheduler.tick()
    assert driver.fires_of("c:latest") == before + [utc(2026, 11, 2, 0, 10)]
    assert driver.fires_of("c:skip") == before
    # nothing was removed as a ghost: both are still scheduled after a full reconcile
    driver.scheduler._reconcile(redis_client)
    assert {k for k in redis_client.zrange("redbeat::schedule", 0, -1)} >= {"redbeat:c:latest", "redbeat:c:skip"}


def test_a_dynamic_one_off_run_stays_in_the_history_and_metrics_after_its_entry_left(
        app, app_history, worker, redis_client, monkeypatch, tmp_path):
    from monitoring.metrics import RUNS_KEY
    from tests.tasks.beat.harness import PublishingScheduler
    from tests.monitoring.databases import drained_records

    class LiveDriver(BeatDriver):
        def start(self):
            return PublishingScheduler(app=self.app, max_interval=self.max_interval_s,
                                       lock_timeout=5 * self.max_interval_s, lazy=False)

    now = datetime.now(timezone.utc).replace(microsecond=0)
    driver = LiveDriver(app, monkeypatch, tmp_path, FILE, start=now, max_interval_s=5, env=ENV)
    at = now + timedelta(seconds=30)
    entries = DynamicEntries.for_app(app)
    entries.put("once:1", {"task": ht.ok.name, "args": ["dyn"], "at": at.strftime("%Y-%m-%dT%H:%M:%S")})
    driver.clock.now = at + timedelta(seconds=1)
    driver.scheduler.tick()
    assert entries.names() == []
    [record] = drained_records(app_history, expected=1, entry="once:1")
    assert (record.task_name, record.status) == (ht.ok.name, "success")
    assert record.fire_at == at
    assert any('"once:1"' in field for field in redis_client.hkeys(RUNS_KEY))


def test_a_dynamic_entrys_policy_is_published_for_the_workers_across_beat_restarts_and_it_can_be_triggered(
        app, redis_client, monkeypatch, tmp_path):
    import json

    from tasks.policy import PUBLISHED_ENTRY_POLICIES_KEY
    from tasks.actions.trigger import trigger_entry

    driver = _driver(app, monkeypatch, tmp_path)
    entries = DynamicEntries.for_app(app)
    entries.put("pol:1", {"task": "beatkeeper.heartbeat", "every": 60, "overlap": "skip", "lock_ttl": 30})
    entries.put("plain:1", {"task": "beatkeeper.heartbeat", "every": 60})
    published = redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "pol:1")
    assert json.loads(published)["policy"] == {"overlap": "skip", "lock_ttl_s": 30.0}
    assert redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "plain:1") is None  # its task's declaration applies
    driver.restart()  # the file's publication replaces the hash; the dynamic entry's is published again
    assert redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "pol:1") == published
    assert "file-minutely" in redis_client.hkeys(PUBLISHED_ENTRY_POLICIES_KEY)
    assert trigger_entry(app, "plain:1", who="test") and trigger_entry(app, "pol:1", who="test")
    entries.remove("pol:1")
    assert redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "pol:1") is None


def test_beat_removes_an_entry_saved_through_redbeats_api_and_keeps_the_dynamic_ones(app, redis_client,
                                                                                     monkeypatch, tmp_path):
    from celery.schedules import schedule
    from redbeat.schedulers import RedBeatSchedulerEntry

    driver = _driver(app, monkeypatch, tmp_path)
    entries = DynamicEntries.for_app(app)
    entries.put("kept:1", {"task": "beatkeeper.heartbeat", "every": 60})
    RedBeatSchedulerEntry("stranger", "beatkeeper.heartbeat", schedule(60), app=app).save()
    driver.scheduler.tick()  # one more entry than registered: beat looks at everything
    stored = set(redis_client.zrange("redbeat::schedule", 0, -1))
    assert "redbeat:kept:1" in stored and "redbeat:file-minutely" in stored
    assert "redbeat:stranger" not in stored and not redis_client.exists("redbeat:stranger")
    driver.clock.now += timedelta(seconds=61)  # the periodic look, counts equal: nothing removed
    driver.scheduler.tick()
    assert "redbeat:kept:1" in set(redis_client.zrange("redbeat::schedule", 0, -1))


def test_a_dispatched_one_offs_policy_stays_published_for_its_retries_then_is_retired(
        app, redis_client, monkeypatch, tmp_path):
    import json

    from tasks.beat.dynamic import expire_retired_policies
    from tasks.dynamic.entries import RETIRED_POLICY_KEEP_S
    from tasks.policy import PUBLISHED_ENTRY_POLICIES_KEY

    driver = _driver(app, monkeypatch, tmp_path)
    entries = DynamicEntries.for_app(app)
    at = START + timedelta(minutes=5)
    entries.put("retry:1", {"task": "beatkeeper.heartbeat", "at": at.strftime("%Y-%m-%dT%H:%M:%S"),
                            "retry": {"max_retries": 2, "backoff": 10}})
    published = redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "retry:1")
    assert json.loads(published)["retry"]
    driver.clock.now = at + timedelta(seconds=1)
    driver.scheduler.tick()
    assert entries.names() == []  # the one-off left the schedule...
    assert redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "retry:1") == published  # ...its run still reads this
    driver.restart()  # the file's publication replaces the hash: the retired policy is published again
    assert redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "retry:1") == published
    dispatched_ts = (at + timedelta(seconds=1)).timestamp()
    assert expire_retired_policies(redis_client, dispatched_ts + RETIRED_POLICY_KEEP_S - 1) == 0
    assert expire_retired_policies(redis_client, dispatched_ts + RETIRED_POLICY_KEEP_S) == 1
    assert redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "retry:1") is None
    driver.restart()
    assert redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "retry:1") is None  # and stays retired


def test_putting_a_name_again_keeps_its_new_policy_from_the_old_ones_retirement(app, redis_client, monkeypatch,
                                                                                tmp_path):
    from tasks.beat.dynamic import expire_retired_policies
    from tasks.dynamic.entries import RETIRED_POLICY_KEEP_S
    from tasks.policy import PUBLISHED_ENTRY_POLICIES_KEY

    driver = _driver(app, monkeypatch, tmp_path)
    entries = DynamicEntries.for_app(app)
    at = START + timedelta(minutes=5)
    spec = {"task": "beatkeeper.heartbeat", "at": at.strftime("%Y-%m-%dT%H:%M:%S"), "overlap": "skip", "lock_ttl": 30}
    entries.put("again:1", spec)
    driver.clock.now = at + timedelta(seconds=1)
    driver.scheduler.tick()
    entries.put("again:1", {**spec, "at": (at + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")})
    assert expire_retired_policies(redis_client, at.timestamp() + 2 * RETIRED_POLICY_KEEP_S) == 0
    assert redis_client.hget(PUBLISHED_ENTRY_POLICIES_KEY, "again:1") is not None

"""Property (issue 14): a schedule `check` accepts, beat starts with, and a worker runs its entries
without a failure the guard did not record. Random schedules over every entry key, at and around
the boundaries; check's own loading (``tasks.cli.common.load_schedule``), beat's start-up in
this process, a real worker on the session's Redis."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schedules.errors import ScheduleConfigError
from tasks import headers
from tasks.beat import policy_publisher
from tasks.beat.scheduler import BeatkeeperScheduler
from tests.app_wiring import set_published_policies
from tasks.policy import PublishedPolicies
from tests.monitoring.databases import app_history, sqlite_url  # noqa: F401
from tests.servers import wait_until
from tests.tasks import contract_tasks

TASK = contract_tasks.any_args.name
#: Values a run may end with when nothing is wrong: ran, or a skip the policy asked for.
RECORDED_OK = {"success", "expired", "skipped_overlap", "skipped_budget", "skipped_paused", "skipped_duplicate"}

timings = st.one_of(
    st.fixed_dictionaries({"every": st.sampled_from([10, 10.5, 11, 30, 60, "2m", "1h", 86400])},
                          optional={"phase": st.sampled_from([0, 1, "5s", 59])}),
    st.fixed_dictionaries({"cron": st.sampled_from(["* * * * *", "*/5 * * * *", "0 3 * * *", "30 2 * * 0",
                                                    "0 0 1 1 *", "59 23 31 12 *", "0 9-17 * * mon-fri"])},
                          optional={"timezone": st.sampled_from(["UTC", "Australia/Sydney", "America/New_York"]),
                                    "dst": st.fixed_dictionaries({}, optional={
                                        "gap": st.sampled_from(["shift", "skip"]),
                                        "repeat": st.sampled_from(["first", "both"])})}),
    st.fixed_dictionaries({"at": st.sampled_from(["2027-01-01T00:00:00", "2030-10-04T02:30", "2027-06-30T23:59:59"])},
                          optional={"timezone": st.sampled_from(["UTC", "Australia/Sydney"])}),
    st.fixed_dictionaries({"windows": st.sampled_from([
        [{"hours": "7-9,17-19", "days": "mon-fri", "every": "2m"}, {"every": "5m"}],
        [{"every": 10}], [{"days": "sat,sun", "every": "1h"}, {"every": 60}]])},
        optional={"timezone": st.sampled_from(["UTC", "Europe/London"])}),
)
options = {
    "args": st.sampled_from([[], ["feed-1"], ["feed-1", "north", 3]]),
    "kwargs": st.sampled_from([{}, {"region": "south"}, {"extra": [1, {"a": None}]}]),
    "queue": st.just("default"),
    "expires": st.sampled_from([1, 55, "1h", 7199, 7200, 7201]),
    "enabled": st.booleans(),
    "description": st.sampled_from(["", "a run"]),
    "expected_runtime": st.sampled_from([0.5, 3600]),
    "max_runs_per_hour": st.sampled_from([1, 59, 60, 120, 360, 1000, 10**6]),
    "overlap": st.sampled_from(["allow", "skip", "buffer_one"]),
    "lock_ttl": st.sampled_from([0.5, 1, 60, 3599, 3600, 3601, 5000]),
    "lock_key": st.sampled_from([[], ["feed_id"], ["region", "feed_id"], ["extra"]]),
    "max_runtime": st.sampled_from([0.5, 600]),
    "time_limit": st.sampled_from([30, 600]),
    "catchup": st.sampled_from(["skip", "latest", "all"]),
    "catchup_window": st.sampled_from([1, 60, "24h"]),
    "catchup_max": st.sampled_from([1, 10, 1000]),
    "retry": st.sampled_from([{"max_retries": 1}, {"max_retries": 3, "backoff": 1, "on": ["ValueError"]}]),
}
entries = st.builds(lambda timing, extra: {"task": TASK, **timing, **extra},
                    timings, st.fixed_dictionaries({}, optional=options))
schedules = st.dictionaries(st.sampled_from(["alpha", "beta", "gamma"]), entries, min_size=1, max_size=3)


@pytest.fixture
def schedule_file(tmp_path, monkeypatch):
    path = tmp_path / "schedule.json"
    monkeypatch.setenv("BEATKEEPER_SCHEDULE", str(path))
    monkeypatch.setenv("BEATKEEPER_DISABLE", "beatkeeper-heartbeat")  # the property is about the random entries
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(schedule=schedules)
def test_what_check_accepts_beat_starts_and_a_worker_runs(schedule, schedule_file, app, redis_client,
                                                           app_history, worker):
    from tasks.cli.common import load_schedule

    schedule_file.write_text(json.dumps(schedule))
    now = datetime.now(timezone.utc)
    try:
        loaded = load_schedule(None, now=now)  # what `beatkeeper check` runs: the platform's entries and the file
    except ScheduleConfigError as exc:
        event(f"refused: {sorted({p.field for p in exc.problems})}")
        return  # refused: one line per problem, nothing else is promised
    scheduler = BeatkeeperScheduler(app=app, lazy=False)  # beat's start-up: must not refuse what check accepted
    assert set(scheduler.specs) == set(loaded.kept)
    ours = [name for name in loaded.kept if name in schedule]
    if not ours:
        return
    name = ours[0]
    spec = loaded.kept[name]
    set_published_policies(app, PublishedPolicies(redis_client, refresh_s=0))
    sent = app.tasks[spec.task].apply_async(list(spec.args), dict(spec.kwargs),
                                            headers=headers.dispatch_headers(name, now),
                                            **policy_publisher.message_options(spec))

    def recorded():
        app_history.drain()
        return [r for r in app_history.query(task=TASK, limit=100) if r.task_id == sent.id]

    event("accepted and run")
    [record] = wait_until(recorded, timeout_s=30, interval_s=0.1, what=f"the history row of {name}")
    assert record.status in RECORDED_OK, (record.status, record.error_type, record.error_message, spec)

"""An entry's `retry` key: transient errors retried with backoff and jitter on a real worker,
each attempt a history row; other errors and exhausted retries fail. The worker takes the retry
policy from what beat published for the entry, never from a message header (issue 13)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from schedules.entry import RetrySpec, convert_keys
from tasks import headers
from tasks.beat import policy_publisher
from tests.app_wiring import set_published_policies
from tasks.policy import PublishedPolicies
from tasks.beat.schedule_source import load_validated_schedule
from tests.monitoring.databases import app_history, drained_records, sqlite_url  # noqa: F401
from tests.tasks import retry_tasks
from tests.tasks.conftest import publish_entry

FIRE_AT = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
#: What beat sent before issue 13; now any sender's header, which must give no task retries.
FORGED_RETRY = {"beatkeeper_retry": json.dumps({"max_retries": 100, "backoff_s": 0.05, "backoff_max_s": 0.1,
                                                "jitter": False, "on": []})}


@pytest.fixture(autouse=True)
def published_now(app, redis_client):
    """The worker reads what is published at each run (no 5 s cache across tests)."""
    set_published_policies(app, PublishedPolicies(redis_client, refresh_s=0))


def _dispatch(task, args, entry: str, retry: RetrySpec):
    publish_entry(entry, task, retry=retry)
    return task.apply_async(args, headers=headers.dispatch_headers(entry, FIRE_AT))


def _statuses(store, entry: str, expected: int) -> list[str]:
    records = drained_records(store, expected=expected, entry=entry)
    return [r.status for r in sorted(records, key=lambda r: (r.attempt, r.finished_at))]


def test_the_retry_key_is_validated_and_converted():
    values, problems = convert_keys({"task": "t", "every": 60, "retry": {
        "max_retries": 4, "backoff": "30s", "backoff_max": "10m", "on": ["TimeoutError"]}})
    assert problems == []
    assert values["retry"] == RetrySpec(max_retries=4, backoff_s=30, backoff_max_s=600, on=("TimeoutError",))
    _, problems = convert_keys({"task": "t", "every": 60, "retry": {"max_retires": 4, "backoff": 0}})
    assert sorted(problems) == [("retry.backoff", "must be greater than 0 seconds, got 0"),
                                ("retry.max_retires", "unknown key 'max_retires'; did you mean 'max_retries'?")]


def test_a_transient_error_is_retried_with_backoff_and_each_attempt_is_a_history_row(app_history, worker,
                                                                                      redis_client):
    policy = RetrySpec(max_retries=3, backoff_s=0.1, backoff_max_s=0.4, jitter=True, on=("OSError",))
    result = _dispatch(retry_tasks.flaky, ("flaky-attempts", 2), "flaky-entry", policy)
    assert result.get(timeout=30) == 3  # TimeoutError is an OSError: retried twice, then success
    assert _statuses(app_history, "flaky-entry", 3) == ["retry", "retry", "success"]


def test_retries_stop_at_max_retries_and_the_run_fails(app_history, worker, redis_client):
    policy = RetrySpec(max_retries=2, backoff_s=0.05, backoff_max_s=0.1, on=("TimeoutError",))
    result = _dispatch(retry_tasks.flaky, ("exhausted-attempts", 10), "exhausted-entry", policy)
    with pytest.raises(TimeoutError):
        result.get(timeout=30)
    assert _statuses(app_history, "exhausted-entry", 3) == ["retry", "retry", "failure"]
    assert redis_client.get("exhausted-attempts") == "3"


def test_an_error_the_policy_does_not_name_is_not_retried(app_history, worker, redis_client):
    policy = RetrySpec(max_retries=3, backoff_s=0.05, on=("TimeoutError",))
    result = _dispatch(retry_tasks.broken, ("broken-attempts",), "broken-entry", policy)
    with pytest.raises(ValueError):
        result.get(timeout=30)
    assert _statuses(app_history, "broken-entry", 1) == ["failure"]
    assert redis_client.get("broken-attempts") == "1"


def test_a_forged_retry_header_gives_no_retries_only_the_entry_beat_published_does(app, app_history, worker,
                                                                                   redis_client):
    forged = {**headers.dispatch_headers("forged-entry", FIRE_AT), **FORGED_RETRY}
    result = retry_tasks.broken.apply_async(("forged-attempts",), headers=forged)  # no entry published
    with pytest.raises(ValueError):
        result.get(timeout=30)
    assert _statuses(app_history, "forged-entry", 1) == ["failure"]  # the task declares no retries
    assert redis_client.get("forged-attempts") == "1"

    schedule = {"forged-entry": {"task": retry_tasks.broken.name, "every": 60, "args": ["published-attempts"],
                                 "retry": {"max_retries": 2, "backoff": 0.05, "backoff_max": 0.1}},
                "flaky-entry": {"task": retry_tasks.flaky.name, "every": 60, "args": ["x", 1],
                                "retry": {"max_retries": 5, "backoff": 0.05}}}
    policy_publisher.publish(redis_client, load_validated_schedule(app, environ={}, raw=schedule).entries,
                         default_budget=1000, tasks=app.tasks)
    result = retry_tasks.broken.apply_async(("published-attempts",), headers=forged)  # header still there
    with pytest.raises(ValueError):
        result.get(timeout=30)
    assert redis_client.get("published-attempts") == "3"  # the published 2 retries, not the header's 100
    # An entry published for another task lends it nothing.
    borrowed = retry_tasks.broken.apply_async(("borrowed-attempts",),
                                              headers=headers.dispatch_headers("flaky-entry", FIRE_AT))
    with pytest.raises(ValueError):
        borrowed.get(timeout=30)
    assert redis_client.get("borrowed-attempts") == "1"
    statuses = sorted(r.status for r in drained_records(app_history, expected=4, entry="forged-entry"))
    assert statuses == ["failure", "failure", "retry", "retry"]

"""An entry's `retry` key: transient errors retried with backoff and jitter on a real worker,
each attempt a history row; other errors and exhausted retries fail."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from schedules.entry import RetrySpec, convert_keys
from tasks import headers
from tests.monitoring.databases import app_history, drained_records, sqlite_url  # noqa: F401
from tests.tasks import retry_tasks

FIRE_AT = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)


def _dispatch(task, args, entry: str, retry: RetrySpec):
    sent = {**headers.dispatch_headers(entry, FIRE_AT), headers.RETRY: json.dumps(retry.as_fields())}
    return task.apply_async(args, headers=sent)


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

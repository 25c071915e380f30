"""Flower tells the truth: every run the guard skips (overlap, paused, budget, duplicate, expired)
reaches a terminal state in Celery's task events, as a real event receiver with Celery's own
``State`` (what Flower runs) sees them, and in the result backend, each with its reason."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from celery import states

from monitoring.pauses import PauseStore
from tasks import headers
from tests.monitoring.databases import app_history, sqlite_url  # noqa: F401
from tests.servers import wait_until
from tests.task_events import TaskEvents
from tests.tasks import guarded_tasks as gt
from tests.tasks import history_tasks as ht


def ended(result, timeout_s: float = 20):
    wait_until(lambda: result.state not in (states.PENDING, states.STARTED), timeout_s=timeout_s,
               what=f"{result.id} to end in the backend")
    return result


def overlap(redis_client, probe_for):
    probe = probe_for("ev-busy")
    probe.block()
    first = gt.probe.delay("ev-busy", record=True)
    wait_until(lambda: probe.entered(), timeout_s=10, what="the first run to hold the lock")
    skipped = ended(gt.probe.delay("ev-busy"))
    probe.unblock()
    ended(first)
    return skipped


def paused(redis_client, probe_for):
    PauseStore(redis_client).pause(ht.ok.name, now=time.time(), reason="pricing lock")
    return ended(ht.ok.delay("ev-paused"))


def budget(redis_client, probe_for):
    runs = [ended(ht.small_budget.delay("ev-budget")) for _ in range(3)]  # its declared budget is 2/h
    [skipped] = [r for r in runs if r.state != states.SUCCESS]
    return skipped


def duplicate(redis_client, probe_for):
    sent = headers.dispatch_headers("ev-nightly", datetime.now(timezone.utc))
    ended(ht.ok.apply_async(("ev-dup",), headers=sent))
    return ended(ht.ok.apply_async(("ev-dup",), headers=sent))  # the same instant delivered again


def expired(redis_client, probe_for):
    probe = probe_for("ev-late")
    probe.block()
    first = gt.buffered_probe.delay("ev-late", record=True)
    wait_until(lambda: probe.entered(), timeout_s=10, what="the first run to hold the lock")
    waiting = gt.buffered_probe.apply_async(("ev-late",), expires=datetime.now(timezone.utc) + timedelta(seconds=3))
    skipped = ended(waiting)  # it waited for the lock past its expires
    probe.unblock()
    ended(first)
    return skipped


@pytest.mark.parametrize("skip, status", [
    pytest.param(overlap, "skipped_overlap", id="overlap"),
    pytest.param(paused, "skipped_paused", id="paused"),
    pytest.param(budget, "skipped_budget", id="budget"),
    pytest.param(duplicate, "skipped_duplicate", id="duplicate"),
    pytest.param(expired, "expired", id="expired"),
])
def test_a_skipped_run_reaches_a_terminal_state_with_its_reason(app, app_history, worker, redis_client, probe_for,
                                                               skip, status):
    with TaskEvents(app) as events:
        result = skip(redis_client, probe_for)
        wait_until(lambda: events.task(result.id) is not None and events.task(result.id).ready, timeout_s=20,
                   what=f"a terminal event for the {status} run")
        task = events.task(result.id)
    assert task.state == states.REVOKED and task.revoked  # not STARTED for ever
    assert task.reason.startswith(f"{status}: ") and task.beatkeeper_status == status
    assert status in task.as_dict()["exception"]  # what Flower's task page and API list
    assert result.state == states.REVOKED and str(result.result).startswith(f"{status}: ")

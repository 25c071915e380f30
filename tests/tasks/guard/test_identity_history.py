"""Run identity with the execution history as the record of truth: where Redis may have lost a
run's record (a redelivered message, an instant older than records are kept), a success the
history holds is not run again. Real Redis; SQLite and Postgres."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import OperationalError

from monitoring.history import RunRecord
from monitoring.history_queries import succeeded_task_id
from tasks.guard.identity import ClaimState, RunIdentityMiddleware, claim_record, identity_middleware_for, run_id_of
from tasks.policy import RunPolicy
from tasks.guard.run import Run, RunStatus
from tests.monitoring.databases import (app_history, history_store, history_url, postgres_db_url,  # noqa: F401
                                        sqlite_url)

FIRE_AT = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
RETENTION_S = 3 * 3600.0


def scheduled_run(*, task_id: str = "t-first", redelivered: bool = True, fire_at: datetime = FIRE_AT) -> Run:
    return Run(task_name="tests.identity.job", task_id=task_id, args=(), kwargs={}, policy=RunPolicy(lock_ttl_s=5.0),
               lock_key=None, received_at=0.0, entry="feeds", fire_at=fire_at, redelivered=redelivered)


def history_row(status: str, *, task_id: str = "t-first", fire_at: datetime = FIRE_AT) -> RunRecord:
    return RunRecord(task_name="tests.identity.job", task_id=task_id, status=status, entry="feeds", fire_at=fire_at,
                     started_at=fire_at + timedelta(seconds=1), finished_at=fire_at + timedelta(seconds=2))


class NoRenewer:
    """A claim held by a test is not renewed in the background after the test."""

    def watch(self, lock, *, on_lost=None) -> None:
        pass

    def unwatch(self, lock) -> None:
        pass


def identity_on(redis_client, asked, *, now: datetime = FIRE_AT + timedelta(minutes=5)) -> RunIdentityMiddleware:
    return RunIdentityMiddleware(redis_client, retention_s=RETENTION_S, clock=lambda: now.timestamp(),
                                 succeeded_in_history=asked, renewer=NoRenewer())


def history_of(store):
    return lambda entry, fire_at: succeeded_task_id(store.engine, entry=entry, fire_at=fire_at)


def test_a_redelivered_run_redis_forgot_is_skipped_when_the_history_holds_its_success(redis_client, history_store):
    history_store.write([history_row("failure", task_id="t-zero"), history_row("success")])
    identity = identity_on(redis_client, history_of(history_store))
    run = scheduled_run()  # Redis has no record of it (restarted without it): fencing token 1

    skip = identity.before_run(run)
    assert skip.status is RunStatus.SKIPPED_DUPLICATE and "the history says so" in skip.reason
    assert skip.store_result is False  # the same task id succeeded: its stored result stays
    assert claim_record(redis_client, run_id_of(run)).state is ClaimState.SUCCEEDED  # written again
    # from now on Redis answers by itself
    again = identity.before_run(scheduled_run(task_id="t-other", redelivered=False))
    assert again.status is RunStatus.SKIPPED_DUPLICATE and again.store_result is True


@pytest.mark.parametrize("rows", [[], [history_row("failure")], [history_row("success", fire_at=FIRE_AT + timedelta(
    minutes=1))]], ids=["nothing", "a_failure", "another_instant"])
def test_a_redelivered_run_without_a_success_in_the_history_runs(redis_client, history_store, rows):
    history_store.write(rows)
    run = scheduled_run()
    assert identity_on(redis_client, history_of(history_store)).before_run(run) is None
    assert claim_record(redis_client, run_id_of(run)).state is ClaimState.RUNNING


def test_a_first_delivery_of_a_recent_instant_does_not_ask_the_history(redis_client):
    asked = []
    identity = identity_on(redis_client, lambda *args: asked.append(args) or "t-first")
    assert identity.before_run(scheduled_run(redelivered=False)) is None and asked == []


def test_an_instant_older_than_the_records_are_kept_asks_the_history_even_first_time(redis_client):
    asked = []
    later = FIRE_AT + timedelta(seconds=RETENTION_S + 60)
    identity = identity_on(redis_client, lambda *args: asked.append(args) or "t-first", now=later)
    skip = identity.before_run(scheduled_run(task_id="t-late", redelivered=False))
    assert skip.status is RunStatus.SKIPPED_DUPLICATE and asked == [("feeds", FIRE_AT)]


def test_a_history_that_cannot_answer_leaves_redis_word(redis_client):
    def down(entry, fire_at):
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    assert identity_on(redis_client, down).before_run(scheduled_run()) is None


def test_the_apps_identity_asks_the_apps_history(app, redis_client, app_history):
    fire_at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    task_id = uuid.uuid4().hex
    app_history.write([history_row("success", task_id=task_id, fire_at=fire_at)])
    skip = identity_middleware_for(app, redis_client).before_run(scheduled_run(task_id=task_id, fire_at=fire_at))
    assert skip.status is RunStatus.SKIPPED_DUPLICATE and task_id in skip.reason

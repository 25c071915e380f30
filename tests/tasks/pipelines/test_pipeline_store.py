"""The pipeline store on SQLite and on a real Postgres, time injected: one running run per
pipeline (enforced by the database, also against racing starters), stalled runs derived from
the progress deadline and superseded, step completions that make a second run a no-op, and
which runs ``resume`` accepts."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from monitoring.db import engine_for
from monitoring.pipelines import (PipelineRunStatus, PipelineStore, ResumeRefused, StepStatus,
                                  UnknownPipelineRun)
from tests.monitoring.databases import history_url, postgres_db_url, postgres_url, sqlite_url  # noqa: F401

T0 = datetime(2026, 3, 1, 16, 0, tzinfo=timezone.utc)  # 03:00 in Sydney
STEPS = ("sync", "refresh", "export", "publish")
MAX_RUNTIME = timedelta(minutes=30)


@pytest.fixture
def store(history_url) -> PipelineStore:
    return PipelineStore(engine_for(history_url))


def start(store: PipelineStore, run_id: str, *, at: datetime = T0, pipeline: str = "gtfs-static"):
    return store.start_run(run_id=run_id, pipeline=pipeline, steps=STEPS, params={"feed_url": "f"}, entry="",
                           now=at, deadline_at=at + MAX_RUNTIME)


def complete(store: PipelineStore, run_id: str, step: str, *, at: datetime, following: str | None):
    claim = store.claim_step(run_id, step, task_id=f"{step}-task", now=at, deadline_at=at + MAX_RUNTIME)
    assert claim.kind == "claimed"
    store.complete_step(run_id, step, checksum=f"sum-{step}", output={"status": "ok", "step": step}, now=at,
                        next_step=following, deadline_at=following and at + MAX_RUNTIME)


def test_a_second_start_is_refused_while_the_first_run_makes_progress(store):
    first = start(store, "run-1")
    second = start(store, "run-2", at=T0 + timedelta(minutes=29))
    other = start(store, "other-1", pipeline="other")

    assert first.started and other.started
    assert (second.started, second.run, second.blocked_by.run_id) == (False, None, "run-1")
    assert [r.run_id for r in store.runs(pipeline="gtfs-static")] == ["run-1"]


def test_a_start_with_the_id_of_an_existing_run_is_a_redelivery_not_a_new_run(store):
    start(store, "run-1")
    again = start(store, "run-1", at=T0 + timedelta(minutes=1))
    assert (again.started, again.already_existed, again.run.created_at) == (False, True, T0)


def test_a_stalled_run_is_abandoned_by_the_next_start_and_its_late_steps_do_nothing(store):
    start(store, "run-1")
    complete(store, "run-1", "sync", at=T0 + timedelta(minutes=5), following="refresh")
    stalled_at = T0 + timedelta(minutes=5) + MAX_RUNTIME + timedelta(seconds=1)
    assert store.run("run-1").state(stalled_at - timedelta(seconds=2)) == "running"
    assert store.run("run-1").state(stalled_at) == "stalled"
    assert [r.run_id for r in store.stalled_runs(now=stalled_at)] == ["run-1"]

    newer = start(store, "run-2", at=stalled_at)
    assert (newer.started, newer.abandoned) == (True, ("run-1",))
    abandoned = store.run("run-1")
    assert abandoned.status is PipelineRunStatus.ABANDONED and "superseded by run-2" in abandoned.error
    late = store.claim_step("run-1", "refresh", task_id="late", now=stalled_at, deadline_at=stalled_at + MAX_RUNTIME)
    assert (late.kind, late.run.status) == ("inactive", PipelineRunStatus.ABANDONED)


def test_a_completed_step_claimed_again_is_done_with_its_stored_output(store):
    start(store, "run-1")
    complete(store, "run-1", "sync", at=T0 + timedelta(minutes=1), following="refresh")
    again = store.claim_step("run-1", "sync", task_id="redelivered", now=T0 + timedelta(minutes=2),
                             deadline_at=T0 + timedelta(minutes=32))
    assert (again.kind, again.record.output, again.record.checksum, again.record.attempts) == (
        "done", {"status": "ok", "step": "sync"}, "sum-sync", 1)
    run = store.run("run-1")
    assert (run.current_step, run.updated_at, run.deadline_at) == (
        "refresh", T0 + timedelta(minutes=1), T0 + timedelta(minutes=1) + MAX_RUNTIME)


def test_the_last_step_done_makes_the_run_succeed(store):
    start(store, "run-1")
    for minute, (step, following) in enumerate(zip(STEPS, STEPS[1:] + (None,)), start=1):
        complete(store, "run-1", step, at=T0 + timedelta(minutes=minute), following=following)
    run = store.run("run-1")
    assert (run.status, run.finished_at, run.deadline_at, run.current_step) == (
        PipelineRunStatus.SUCCEEDED, T0 + timedelta(minutes=4), None, None)
    assert not run.is_stalled(T0 + timedelta(days=1))
    assert start(store, "run-2", at=T0 + timedelta(minutes=5)).started


def test_retries_count_as_attempts_and_push_the_deadline(store):
    start(store, "run-1")
    store.claim_step("run-1", "sync", task_id="t", now=T0, deadline_at=T0 + MAX_RUNTIME)
    store.retry_step("run-1", "sync", error="GtfsDownloadError: GET failed", now=T0 + timedelta(minutes=1),
                     deadline_at=T0 + timedelta(minutes=2) + MAX_RUNTIME)
    retrying = store.step_records("run-1")["sync"]
    assert (retrying.status, retrying.error) == (StepStatus.RETRYING, "GtfsDownloadError: GET failed")
    assert store.run("run-1").deadline_at == T0 + timedelta(minutes=2) + MAX_RUNTIME
    store.claim_step("run-1", "sync", task_id="t", now=T0 + timedelta(minutes=2), deadline_at=T0 + MAX_RUNTIME * 2)
    assert store.step_records("run-1")["sync"].attempts == 2


@pytest.mark.parametrize("setup, at, reason", [
    ("succeeded", T0 + timedelta(hours=5), "it already succeeded"),
    ("running", T0 + timedelta(minutes=10), "it is still running (step refresh"),
], ids=["a_succeeded_run_is_not_resumed", "a_run_making_progress_is_not_resumed"])
def test_resume_refuses(store, setup, at, reason):
    start(store, "run-1")
    complete(store, "run-1", "sync", at=T0 + timedelta(minutes=1), following="refresh")
    if setup == "succeeded":
        for step, following in zip(STEPS[1:], STEPS[2:] + (None,)):
            complete(store, "run-1", step, at=T0 + timedelta(minutes=2), following=following)
    with pytest.raises(ResumeRefused) as refused:
        store.resume_run("run-1", next_step="refresh", now=at, deadline_at=at + MAX_RUNTIME)
    assert refused.value.reason.startswith(reason) and refused.value.run_id == "run-1"


def test_resume_continues_a_failed_run_unless_another_run_is_going(store):
    start(store, "run-1")
    complete(store, "run-1", "sync", at=T0 + timedelta(minutes=1), following="refresh")
    store.claim_step("run-1", "refresh", task_id="t", now=T0 + timedelta(minutes=2), deadline_at=T0 + MAX_RUNTIME)
    assert store.fail_step("run-1", "refresh", error="OperationalError: gone", now=T0 + timedelta(minutes=3))
    failed = store.run("run-1")
    assert (failed.status, failed.failed_step, failed.error) == (PipelineRunStatus.FAILED, "refresh",
                                                                  "OperationalError: gone")
    assert start(store, "run-2", at=T0 + timedelta(minutes=4)).started  # a failed run blocks nothing
    with pytest.raises(ResumeRefused, match="run run-2 of gtfs-static is running"):
        store.resume_run("run-1", next_step="refresh", now=T0 + timedelta(minutes=5),
                         deadline_at=T0 + timedelta(minutes=5) + MAX_RUNTIME)

    complete_all_after = T0 + timedelta(minutes=6)
    for step, following in zip(STEPS, STEPS[1:] + (None,)):
        complete(store, "run-2", step, at=complete_all_after, following=following)
    resumed = store.resume_run("run-1", next_step="refresh", now=T0 + timedelta(minutes=7),
                               deadline_at=T0 + timedelta(minutes=7) + MAX_RUNTIME)
    assert (resumed.status, resumed.resumes, resumed.error, resumed.failed_step, resumed.current_step) == (
        PipelineRunStatus.RUNNING, 1, None, None, "refresh")
    with pytest.raises(UnknownPipelineRun):
        store.resume_run("nope", next_step="sync", now=T0, deadline_at=T0)


def test_starters_racing_at_one_instant_start_exactly_one_run(store):
    racers = 6
    barrier = threading.Barrier(racers)
    outcomes = []

    def race(n: int) -> None:
        barrier.wait()
        outcomes.append(start(store, f"run-{n}"))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [o.run.run_id for o in outcomes if o.started]
    assert len(outcomes) == racers and len(winners) == 1
    assert {o.blocked_by.run_id for o in outcomes if not o.started} == set(winners)

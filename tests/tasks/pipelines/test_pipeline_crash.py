"""A worker SIGKILLed after a step committed and before the next step reached the broker: a
bare Celery chain would be stuck for good (celery#5970, #6631). The run is detected as stalled
once its next step's ``max_runtime_s`` passes with no progress, and a resume (by hand, or the
automatic policy) finishes it without running the committed steps again; the result is
byte-identical to a clean run.

Two shapes of death: a solo worker dies whole (its message waits for the broker's visibility
timeout: the run stalls and is resumed); a prefork pool child dies, its worker requeues the
message at once, and the redelivered step -- idempotent -- repeats nothing and sends the next
step, so the run finishes by itself."""
from __future__ import annotations

import signal
from datetime import timedelta

import pytest

from monitoring.events import read_events
from monitoring.pipelines import PipelineRunStatus, ResumeRefused, StepStatus
from examples.transit import gtfs_tasks
from tasks.pipelines.steps import resume_pipeline, resume_stalled_pipelines
from tests.examples.transit.gtfs.test_pipeline import published_departures
from tests.monitoring.databases import drained_records
from tests.tasks.pipelines.crash_hooks import ENABLE_ENV, crash_key
from tests.examples.transit.test_gtfs_pipeline_worker import clean_export_checksum, finished, manifest
from tests.servers import wait_until

pytestmark = pytest.mark.process
START_TIMEOUT_S = 60  # a cold worker import on a busy 2-core machine


def start_hooked_worker(processes, pool: str, env: dict[str, str]):
    proc = processes.celery("worker", "-P", pool, "-c", "1", "-Q", "default", "-n", "crashy@%h", "--without-gossip",
                            "--without-mingle", "--without-heartbeat", "--loglevel=INFO", name="crashy",
                            env={**env, "BEATKEEPER_TASK_MODULES": "tests.tasks.pipelines.crash_hooks", ENABLE_ENV: "1"})
    wait_until(lambda: proc.poll() is not None or b" ready." in proc.log_path.read_bytes(),
               timeout_s=START_TIMEOUT_S, what="the hooked worker to be ready")
    assert proc.poll() is None, proc.log_path.read_text()[-3000:]
    return proc


def _hooked_env(sqlite_url, gtfs_env, feed_server, put_receiver) -> dict[str, str]:
    return {"DATABASE_URL": sqlite_url, "GTFS_STATIC_URL": feed_server.url, "GTFS_DATABASE_URL": gtfs_env.database_url,
            "GTFS_PUBLISH_URL": put_receiver.base_url, "BEATKEEPER_DATA_DIR": str(gtfs_env.data_dir)}


def _assert_published_like_a_clean_run(feed, feed_server, put_receiver, tmp_path) -> None:
    assert feed_server.counts["requests"] == 1
    assert manifest(put_receiver)["sha256"] == clean_export_checksum(feed, tmp_path)
    assert published_departures(put_receiver, tmp_path) == feed.expected_departures(*feed.date_range())


@pytest.mark.parametrize("resume", ["by_hand", "automatic"])
def test_a_worker_killed_between_steps_leaves_a_stalled_run_that_resume_finishes_without_redoing_steps(
        request, app, processes, redis_client, sqlite_url, pipeline_store, app_history, gtfs_env, feed,
        feed_server, put_receiver, tmp_path, resume):
    redis_client.set(crash_key(gtfs_tasks.EXPORT.task), 1)
    hooked = start_hooked_worker(processes, "solo", _hooked_env(sqlite_url, gtfs_env, feed_server, put_receiver))
    run_id = gtfs_tasks.start.delay().get(timeout=30)["run_id"]
    wait_until(lambda: hooked.poll() is not None, timeout_s=60, what="the worker to die before sending export")
    assert hooked.returncode == -signal.SIGKILL

    run = pipeline_store.run(run_id)
    records = pipeline_store.step_records(run_id)
    assert (run.status, run.current_step) == (PipelineRunStatus.RUNNING, "export")
    assert {s: (r.status, r.attempts) for s, r in records.items()} == {
        "sync": (StepStatus.DONE, 1), "refresh": (StepStatus.DONE, 1)}
    # Stalled once export has had its max_runtime_s without finishing, counted from refresh's commit.
    assert run.deadline_at - run.updated_at == timedelta(seconds=gtfs_tasks.EXPORT.max_runtime_s)
    committed_at = run.updated_at.timestamp()
    assert not run.is_stalled(run.updated_at + timedelta(seconds=1))
    assert [r.run_id for r in pipeline_store.stalled_runs(now=run.deadline_at + timedelta(seconds=1))] == [run_id]
    if resume == "by_hand":
        with pytest.raises(ResumeRefused, match="still running"):
            resume_pipeline(app, run_id, now=committed_at + 1)
        resumed = resume_pipeline(app, run_id, now=run.deadline_at.timestamp() + 1)
    else:
        assert resume_stalled_pipelines(app, now=committed_at + 1) == []
        [resumed] = resume_stalled_pipelines(app, now=run.deadline_at.timestamp() + 1)
        [stalled] = read_events(redis_client, kind="pipeline_stalled")
        assert (stalled.data["run_id"], stalled.data["step"], stalled.data["action"]) == (run_id, "export", "resumed")
    assert (resumed.from_step, resumed.skipped_steps) == ("export", ("sync", "refresh"))
    request.getfixturevalue("worker")  # a healthy worker takes over
    done = finished(pipeline_store, run_id)

    assert (done.status, done.resumes) == (PipelineRunStatus.SUCCEEDED, 1)
    assert {s: r.attempts for s, r in pipeline_store.step_records(run_id).items()} == {
        "sync": 1, "refresh": 1, "export": 1, "publish": 1}
    rows = [r for r in drained_records(app_history, expected=5, status="success") if r.pipeline_run_id == run_id]
    assert sorted(r.task_name.rsplit(".", 1)[-1] for r in rows) == ["export", "publish", "refresh", "start", "sync"]
    _assert_published_like_a_clean_run(feed, feed_server, put_receiver, tmp_path)


def test_a_pool_child_killed_between_steps_is_redelivered_and_the_run_finishes_by_itself(
        app, processes, redis_client, sqlite_url, pipeline_store, app_history, gtfs_env, feed, feed_server,
        put_receiver, tmp_path):
    redis_client.set(crash_key(gtfs_tasks.EXPORT.task), 1)
    hooked = start_hooked_worker(processes, "prefork", _hooked_env(sqlite_url, gtfs_env, feed_server, put_receiver))
    run_id = gtfs_tasks.start.delay().get(timeout=30)["run_id"]
    done = finished(pipeline_store, run_id)

    assert hooked.poll() is None  # the worker lived on: only its pool child died
    assert (done.status, done.resumes) == (PipelineRunStatus.SUCCEEDED, 0)
    assert {s: r.attempts for s, r in pipeline_store.step_records(run_id).items()} == {
        "sync": 1, "refresh": 1, "export": 1, "publish": 1}  # refresh's second delivery redid nothing
    rows = [r for r in drained_records(app_history, expected=6, status="success") if r.pipeline_run_id == run_id]
    assert sorted(r.task_name.rsplit(".", 1)[-1] for r in rows) == [
        "export", "publish", "refresh", "refresh", "start", "sync"]
    assert read_events(redis_client, kind="pipeline_stalled") == []
    _assert_published_like_a_clean_run(feed, feed_server, put_receiver, tmp_path)

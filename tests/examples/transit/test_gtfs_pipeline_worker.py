"""The GTFS pipeline on a real worker and a real Redis: the published file matches the feed;
a failing step retries with backoff, then fails the run, and ``resume`` finishes it without
redoing the steps before; an unchanged feed publishes nothing; a bad feed stops at sync with
its message and leaves the published version alone; a second trigger while a run is going
is skipped as overlap."""
from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from celery import states
from click.testing import CliRunner

from monitoring.events import read_events
from monitoring.pipelines import PipelineRunStatus, StepStatus
from examples.transit import gtfs_tasks
from tasks import headers
from tasks.cli import main
from examples.transit.gtfs import export_app_database, refresh_derived_tables, sync_static_feed
from schedules.entry import RetrySpec
from tests.examples.transit.gtfs.feedgen import NOW, small_feed, zip_files
from tests.examples.transit.gtfs.test_pipeline import published_departures
from tests.monitoring.databases import drained_records
from tests.servers import wait_until
from tests.run_states import run_state

STEPS = ("sync", "refresh", "export", "publish")
ENTRY = "gtfs-static-pipeline"


def started_run(timeout_s: float = 30, **options) -> str:
    outcome = gtfs_tasks.start.apply_async(**options).get(timeout=timeout_s)
    assert outcome["started"], outcome
    return outcome["run_id"]


def finished(store, run_id: str, timeout_s: float = 30):
    def ended():
        run = store.run(run_id)
        return run if run is not None and run.status is not PipelineRunStatus.RUNNING else None
    return wait_until(ended, timeout_s=timeout_s, interval_s=0.05, what=f"pipeline run {run_id} to end")


def history_of(store, run_id: str, *, expected: int) -> dict[str, list]:
    """The run's history rows by task (short name), oldest first, once the database holds ``expected``."""
    rows = [r for r in drained_records(store, expected=expected) if r.pipeline_run_id == run_id]
    by_task: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: (r.finished_at, r.attempt)):
        by_task.setdefault(row.task_name.rsplit(".", 1)[-1], []).append(row)
    return by_task


def clean_export_checksum(feed, tmp_path) -> str:
    """The export a clean, uninterrupted run of the plain step functions makes of ``feed``."""
    source = tmp_path / "clean-feed.zip"
    source.write_bytes(feed.zip_bytes())
    database = f"sqlite:///{tmp_path / 'clean.db'}"
    sync_static_feed(feed_url=str(source), database=database)
    refresh_derived_tables(database=database)
    return export_app_database(database=database, output_path=tmp_path / "clean.sqlite").checksum


def manifest(put_receiver) -> dict:
    return json.loads(put_receiver.objects["manifest.json"])


def test_a_scheduled_run_publishes_a_file_whose_departures_match_the_feed(
        pipeline_store, app_history, gtfs_env, worker, feed, put_receiver, tmp_path):
    fire_at = datetime.now(timezone.utc).replace(microsecond=0)
    sent = headers.dispatch_headers(ENTRY, fire_at)
    run_id = started_run(headers=sent)
    run = finished(pipeline_store, run_id)

    assert (run.status, run.entry, run.steps) == (PipelineRunStatus.SUCCEEDED, ENTRY, STEPS)
    assert published_departures(put_receiver, tmp_path) == feed.expected_departures(*feed.date_range())
    records = pipeline_store.step_records(run_id)
    assert {name: (r.status, r.attempts) for name, r in records.items()} == {s: (StepStatus.DONE, 1) for s in STEPS}
    assert records["publish"].checksum == records["export"].checksum == manifest(put_receiver)["sha256"]
    assert records["sync"].output["status"] == "loaded"
    history = history_of(app_history, run_id, expected=5)
    assert {task: [r.status for r in rows] for task, rows in history.items()} == {
        "start": ["success"], **{step: ["success"] for step in STEPS}}
    # The entry's headers belong to the start task: its steps are not runs of the entry.
    assert history["start"][0].entry == ENTRY and {history[s][0].entry for s in STEPS} == {""}


def test_export_retries_with_backoff_then_fails_the_run_and_resume_finishes_it_like_a_clean_run(
        pipeline_store, app_history, gtfs_env, fast_retries, worker, feed, feed_server, put_receiver,
        redis_client, tmp_path):
    gtfs_env.obstruct_export()
    run_id = started_run()
    failed = finished(pipeline_store, run_id)

    assert (failed.status, failed.failed_step) == (PipelineRunStatus.FAILED, "export")
    assert failed.error.startswith("FileExistsError")
    history = history_of(app_history, run_id, expected=6)
    assert [(r.status, r.attempt) for r in history["export"]] == [("retry", 0), ("retry", 1), ("failure", 2)]
    assert "publish" not in history and "publish" not in pipeline_store.step_records(run_id)
    assert put_receiver.puts() == []
    [event] = read_events(redis_client, kind="pipeline_failed")
    assert (event.subject, event.data["run_id"], event.data["step"], event.data["attempts"]) == (
        "gtfs-static", run_id, "export", 3)

    gtfs_env.clear_export()
    resumed = CliRunner().invoke(main, ["pipeline", "resume", run_id])
    assert resumed.exit_code == 0, resumed.output
    assert "from step export (done, not sent again: sync, refresh)" in resumed.output
    run = finished(pipeline_store, run_id)

    assert (run.status, run.resumes, run.error) == (PipelineRunStatus.SUCCEEDED, 1, None)
    records = pipeline_store.step_records(run_id)
    assert {s: records[s].attempts for s in STEPS} == {"sync": 1, "refresh": 1, "export": 4, "publish": 1}
    history = history_of(app_history, run_id, expected=8)
    assert [r.status for r in history["sync"]] == [r.status for r in history["refresh"]] == ["success"]
    assert [r.status for r in history["export"]][-1] == "success" and len(history["publish"]) == 1
    assert feed_server.counts["requests"] == 1  # sync was not asked again, not even a conditional GET
    assert manifest(put_receiver)["sha256"] == clean_export_checksum(feed, tmp_path)
    assert published_departures(put_receiver, tmp_path) == feed.expected_departures(*feed.date_range())


def test_a_transient_failure_retried_in_time_needs_no_resume_and_the_waits_grow(
        pipeline_store, app_history, gtfs_env, retry_policy, worker):
    policy = retry_policy(RetrySpec(max_retries=8, backoff_s=0.3, backoff_max_s=0.6))
    gtfs_env.obstruct_export()
    run_id = started_run()
    wait_until(lambda: (r := pipeline_store.step_records(run_id).get("export")) and r.attempts >= 3,
               timeout_s=20, interval_s=0.01, what="the export's third attempt")
    gtfs_env.clear_export()  # five retries, at least 1.5 s, are left
    run = finished(pipeline_store, run_id)

    assert (run.status, run.resumes) == (PipelineRunStatus.SUCCEEDED, 0)
    attempts = history_of(app_history, run_id, expected=8)["export"]
    assert [r.status for r in attempts][-1] == "success" and {r.status for r in attempts[:-1]} == {"retry"}
    assert [r.attempt for r in attempts] == list(range(len(attempts)))
    for n, (failed, retried) in enumerate(zip(attempts, attempts[1:])):
        # The retry's ETA is set during attempt n, so attempt n + 1 starts at least a delay later.
        waited_s = (retried.started_at - failed.started_at).total_seconds()
        assert waited_s >= policy.delay_s(n, jitter=0.0) - 0.005, (n, waited_s)


def test_an_unchanged_feed_loads_and_publishes_nothing_and_a_changed_one_publishes_a_new_version(
        pipeline_store, app_history, gtfs_env, worker, feed_server, put_receiver, tmp_path):
    first = finished(pipeline_store, started_run())
    again = finished(pipeline_store, started_run())

    assert first.status is again.status is PipelineRunStatus.SUCCEEDED
    outputs = {s: r.output for s, r in pipeline_store.step_records(again.run_id).items()}
    assert (outputs["sync"]["status"], outputs["sync"]["load_count"]) == ("unchanged", 1)
    assert feed_server.counts["not_modified"] == 1 and feed_server.counts["full"] == 1
    assert (outputs["refresh"]["status"], outputs["publish"]["status"]) == ("unchanged", "unchanged")
    assert len(put_receiver.puts()) == 2 and manifest(put_receiver)["version"] == 1

    changed = small_feed(version=2)
    feed_server.set_feed(changed.zip_bytes(), modified_at=NOW + timedelta(days=1))
    third = finished(pipeline_store, started_run())
    outputs = {s: r.output for s, r in pipeline_store.step_records(third.run_id).items()}
    assert (outputs["sync"]["status"], outputs["publish"]["status"]) == ("loaded", "published")
    assert manifest(put_receiver)["version"] == 2
    assert published_departures(put_receiver, tmp_path) == changed.expected_departures(*changed.date_range())


def test_a_malformed_feed_fails_sync_with_its_message_and_the_published_version_stays(
        pipeline_store, app_history, gtfs_env, worker, feed, feed_server, put_receiver, redis_client, tmp_path):
    finished(pipeline_store, started_run())
    live = dict(put_receiver.objects)
    files = small_feed(version=2).files()
    files["stop_times.txt"][6][1] = "25:61:00"
    feed_server.set_feed(zip_files(files), modified_at=NOW + timedelta(days=1))

    run_id = started_run()
    run = finished(pipeline_store, run_id)

    message = "GtfsFeedError: stop_times.txt line 7: arrival_time '25:61:00' is not a valid GTFS time"
    assert (run.status, run.failed_step, run.error) == (PipelineRunStatus.FAILED, "sync", message)
    assert {s: (r.status, r.attempts) for s, r in pipeline_store.step_records(run_id).items()} == {
        "sync": (StepStatus.FAILED, 1)}  # not retried; no later step ran
    history = history_of(app_history, run_id, expected=7)
    assert {task: [r.status for r in rows] for task, rows in history.items()} == {
        "start": ["success"], "sync": ["failure"]}
    [event] = read_events(redis_client, kind="pipeline_failed")
    assert (event.data["step"], event.data["error"], event.data["retried"]) == ("sync", message, False)
    assert put_receiver.objects == live
    assert published_departures(put_receiver, tmp_path) == feed.expected_departures(*feed.date_range())
    engine = sa.create_engine(gtfs_env.database_url)
    try:  # nothing half-written: the first feed is still the loaded one, no staging table left
        assert not [t for t in sa.inspect(engine).get_table_names() if t.startswith("staging")]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT load_count FROM gtfs_sync_state")).scalar() == 1
    finally:
        engine.dispose()


def test_a_trigger_while_a_run_is_going_is_skipped_as_overlap_until_the_run_ends(
        app, pipeline_store, app_history, gtfs_env, worker, feed_server, redis_client):
    feed_server.gate.clear()  # sync will wait inside its download
    fire_at = datetime.now(timezone.utc).replace(microsecond=0)
    scheduled = started_run(headers=headers.dispatch_headers(ENTRY, fire_at))
    assert feed_server.waiting.wait(timeout=20)

    by_hand = app.send_task(gtfs_tasks.START_TASK).get(timeout=30)  # what `celery -A tasks call` sends
    from_cli = CliRunner().invoke(main, ["pipeline", "start", "gtfs-static"])
    assert from_cli.exit_code == 0, from_cli.output
    cli_task_id = from_cli.output.split()[3].rstrip(":")
    assert app.AsyncResult(cli_task_id).get(timeout=30)["skipped"] == "overlap"
    assert (by_hand["started"], by_hand["skipped"], by_hand["running_run_id"]) == (False, "overlap", scheduled)
    skips = read_events(redis_client, kind="overlap_detected")
    assert len(skips) == 2 and {e.data["holder_task_id"] for e in skips} == {scheduled}
    refused = drained_records(app_history, expected=2, status="skipped_overlap")  # in the history: not success
    assert [r.task_name for r in refused] == [gtfs_tasks.START_TASK] * 2
    assert all(r.reason == f"pipeline gtfs-static run {scheduled} is still running" for r in refused)

    feed_server.open()
    assert finished(pipeline_store, scheduled).status is PipelineRunStatus.SUCCEEDED
    assert [r.run_id for r in pipeline_store.runs(pipeline="gtfs-static")] == [scheduled]
    after = started_run()  # the run is over: the next trigger starts
    assert finished(pipeline_store, after).status is PipelineRunStatus.SUCCEEDED


def test_two_triggers_at_the_same_instant_start_one_run(app, pipeline_store, app_history, gtfs_env, worker):
    barrier = threading.Barrier(2)
    results = []

    def trigger(options):
        barrier.wait()
        results.append(gtfs_tasks.start.apply_async(**options))

    fire_at = datetime.now(timezone.utc).replace(microsecond=0)
    threads = [threading.Thread(target=trigger, args=(options,)) for options in (
        {"headers": headers.dispatch_headers(ENTRY, fire_at)}, {})]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    wait_until(lambda: all(run_state(r) in (states.SUCCESS, "SKIPPED_OVERLAP") for r in results) and len(results) == 2,
               timeout_s=30, what="both triggers to be handled")

    def outcome(result) -> str:  # skipped by the start task's own lock, or refused by the running run
        if run_state(result) == "SKIPPED_OVERLAP":
            return "skipped"
        return "started" if result.result["started"] else result.result["skipped"]

    outcomes = sorted(outcome(r) for r in results)
    assert outcomes in (["overlap", "started"], ["skipped", "started"]), outcomes
    [run] = pipeline_store.runs(pipeline="gtfs-static")
    assert finished(pipeline_store, run.run_id).status is PipelineRunStatus.SUCCEEDED


def test_pipeline_runs_lists_each_run_with_its_state_and_progress(pipeline_store, app_history, gtfs_env, worker):
    done = finished(pipeline_store, started_run())
    listed = CliRunner().invoke(main, ["pipeline", "runs", "--name", "gtfs-static", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["run_id"], row["state"], row["done_steps"]) == (done.run_id, "succeeded", list(STEPS))
    table = CliRunner().invoke(main, ["pipeline", "runs"])
    header, line = table.output.strip().splitlines()
    assert header.split()[:3] == ["run", "id", "pipeline"] and line.split()[:3] == [done.run_id, "gtfs-static",
                                                                                    "succeeded"]
    shown = CliRunner().invoke(main, ["pipeline", "show", done.run_id]).output.strip().splitlines()
    assert shown[0] == f"run {done.run_id} of gtfs-static: succeeded"
    assert [line.split()[:3] for line in shown[2:]] == [[step, "done", "1"] for step in STEPS]
    refused = CliRunner().invoke(main, ["pipeline", "resume", done.run_id])
    assert refused.exit_code == 1 and "it already succeeded" in refused.output
    unknown = CliRunner().invoke(main, ["pipeline", "resume", "no-such-run"])
    assert unknown.exit_code == 1 and "no pipeline run 'no-such-run'" in unknown.output


def test_the_automatic_resume_leaves_a_run_stalled_three_times_to_a_person(app, pipeline_store, gtfs_env,
                                                                          redis_client):
    from examples.transit.gtfs_tasks import GTFS_STATIC_PIPELINE, GtfsSettings
    from tasks.pipelines.steps import resume_stalled_pipelines

    t0 = datetime.now(timezone.utc)
    first = GTFS_STATIC_PIPELINE.steps[0]
    pipeline_store.start_run(run_id="hung", pipeline="gtfs-static", steps=STEPS, entry="",
                             params=GtfsSettings.from_env(os.environ).as_params(), now=t0,
                             deadline_at=t0 + timedelta(seconds=first.max_runtime_s))
    now = t0.timestamp()
    for resumes in range(3):  # nobody consumes the chains sent: sync never progresses
        now += first.max_runtime_s + 1
        assert [r.run_id for r in resume_stalled_pipelines(app, now=now)] == ["hung"]
        assert pipeline_store.run("hung").resumes == resumes + 1
    now += first.max_runtime_s + 1
    assert resume_stalled_pipelines(app, now=now) == []
    assert pipeline_store.run("hung").state(datetime.fromtimestamp(now, timezone.utc)) == "stalled"
    actions = [e.data["action"] for e in read_events(redis_client, kind="pipeline_stalled")]
    assert actions == ["resumed"] * 3 + ["left for a person: resumed 3 time(s) already"]


def test_resuming_a_run_whose_slow_step_is_alive_does_not_run_that_step_twice(
        app, pipeline_store, app_history, gtfs_env, worker, feed_server):
    from tasks.pipelines.steps import resume_stalled_pipelines

    feed_server.gate.clear()  # sync is alive but slower than its max_runtime_s
    run_id = started_run()
    assert feed_server.waiting.wait(timeout=20)
    stalled_at = pipeline_store.run(run_id).deadline_at.timestamp() + 1
    assert [r.from_step for r in resume_stalled_pipelines(app, now=stalled_at)] == ["sync"]
    history = wait_until(lambda: history_of(app_history, run_id, expected=2).get("sync"), timeout_s=20,
                         what="the resumed sync's row")
    assert [r.status for r in history] == ["skipped_overlap"]  # its lock is keyed on the run id

    feed_server.open()
    run = finished(pipeline_store, run_id)
    assert (run.status, run.resumes) == (PipelineRunStatus.SUCCEEDED, 1)
    assert {s: r.attempts for s, r in pipeline_store.step_records(run_id).items()} == {s: 1 for s in STEPS}
    assert feed_server.counts["full"] == 1

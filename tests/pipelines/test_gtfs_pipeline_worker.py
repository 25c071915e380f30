"""The GTFS pipeline on a real worker and a real Redis."""
from __future__ import annotations

from monitoring.pipelines import PipelineRunStatus, StepStatus
from tasks import gtfs_tasks
from tests.gtfs.test_pipeline import published_departures
from tests.monitoring.databases import drained_records
from tests.servers import wait_until

STEPS = ("sync", "refresh", "export", "publish")


def started_run(timeout_s: float = 30, **options) -> str:
    outcome = gtfs_tasks.start.apply_async(**options).get(timeout=timeout_s)
    assert outcome["started"], outcome
    return outcome["run_id"]


def finished(store, run_id: str, timeout_s: float = 30):
    def ended():
        run = store.run(run_id)
        return run if run is not None and run.status is not PipelineRunStatus.RUNNING else None
    return wait_until(ended, timeout_s=timeout_s, interval_s=0.05, what=f"pipeline run {run_id} to end")


def test_the_pipeline_publishes_a_file_whose_departures_match_the_feed(pipeline_store, app_history, gtfs_env,
                                                                      worker, feed, put_receiver, tmp_path):
    run_id = started_run()
    run = finished(pipeline_store, run_id)
    assert run.status is PipelineRunStatus.SUCCEEDED, run.error
    assert published_departures(put_receiver, tmp_path) == feed.expected_departures(*feed.date_range())
    records = pipeline_store.step_records(run_id)
    assert {name: (r.status, r.attempts) for name, r in records.items()} == {s: (StepStatus.DONE, 1) for s in STEPS}
    rows = drained_records(app_history, expected=5)
    print([(r.task_name, r.status, r.pipeline_run_id) for r in rows])

"""``beatkeeper pipeline``: pipeline runs, newest first; start a run; resume a failed or stalled one.

    beatkeeper pipeline runs [--name gtfs-static] [--json]
    beatkeeper pipeline show RUN_ID
    beatkeeper pipeline start gtfs-static      # = celery -A tasks call beatkeeper.gtfs.start
    beatkeeper pipeline resume RUN_ID          # from the failed step; done steps are not sent

A running run past its step's progress deadline shows as ``stalled``: its worker died, or its
next step was never sent. ``resume`` refuses a run that is still making progress.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click

from monitoring.pipelines import PipelineRun, PipelineStoreError, StepRecord, StepStatus
from tasks import app
from tasks.infra.redis_client import app_redis
from tasks.cli.common import utc_now
from tasks.pipelines.definition import PipelineError, pipeline_named
from tasks.pipelines.steps import resume_pipeline

RUN_COLUMNS = ("run id", "pipeline", "state", "created (UTC)", "entry", "step", "done", "resumes", "detail")
DETAIL_WIDTH = 60


@click.group("pipeline")
def command() -> None:
    """Pipeline runs: list, show, start, resume."""


@command.command("runs")
@click.option("--name", help="Only runs of this pipeline.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as a JSON list.")
def runs_command(name: str | None, limit: int, as_json: bool) -> None:
    """Show pipeline runs, newest first."""
    now = utc_now()
    store = app.beatkeeper.pipelines
    runs = store.runs(pipeline=name, limit=limit)
    done = {run.run_id: _done_steps(run, store.step_records(run.run_id)) for run in runs}
    if as_json:
        click.echo(json.dumps([run_json(run, now=now, done=done[run.run_id]) for run in runs], indent=2))
    elif not runs:
        click.echo("no pipeline runs recorded" + (f" for {name}" if name else ""))
    else:
        click.echo(_table([RUN_COLUMNS] + [_run_row(run, now=now, done=done[run.run_id]) for run in runs]))


@command.command("show")
@click.argument("run_id")
def show_command(run_id: str) -> None:
    """Show one run and each of its steps."""
    store = app.beatkeeper.pipelines
    run = store.run(run_id)
    if run is None:
        raise click.ClickException(f"no pipeline run {run_id!r}")
    records = store.step_records(run_id)
    click.echo(f"run {run.run_id} of {run.pipeline}: {run.state(utc_now())}"
               + (f" ({run.error})" if run.error else ""))
    rows = [("step", "status", "attempts", "finished (UTC)", "checksum", "detail")]
    for step in run.steps:
        record = records.get(step)
        rows.append((step, "-", "0", "-", "-", "") if record is None else _step_row(record))
    click.echo(_table(rows))


@command.command("start")
@click.argument("name")
def start_command(name: str) -> None:
    """Send the start task of pipeline NAME (what the schedule entry sends)."""
    pipeline = _pipeline(name)
    app_redis(app).ping()  # Redis down: one line at once, not the result backend's minute of retries
    result = app.send_task(pipeline.start_task)
    click.echo(f"sent {pipeline.start_task} as {result.id}: the run's id if it starts "
               f"(`beatkeeper pipeline runs --name {pipeline.name}`)")


@command.command("resume")
@click.argument("run_id")
def resume_command(run_id: str) -> None:
    """Continue RUN_ID from its first step not done (a failed, abandoned or stalled run)."""
    app_redis(app).ping()  # it sends the step's task: Redis down is one line at once
    app.loader.import_default_modules()  # the pipeline definitions live in the task modules
    try:
        resumed = resume_pipeline(app, run_id, now=utc_now().timestamp())
    except (PipelineStoreError, PipelineError) as exc:
        raise click.ClickException(str(exc)) from None
    skipped = f" (done, not sent again: {', '.join(resumed.skipped_steps)})" if resumed.skipped_steps else ""
    click.echo(f"resumed run {resumed.run_id} of {resumed.pipeline} from step {resumed.from_step}{skipped}")


def run_json(run: PipelineRun, *, now: datetime, done: list[str]) -> dict:
    """One run as JSON: instants in ISO-8601 UTC, ``state`` with stalled derived at ``now``."""
    return {"run_id": run.run_id, "pipeline": run.pipeline, "state": run.state(now), "status": run.status.value,
            "entry": run.entry, "created_at": _iso(run.created_at), "updated_at": _iso(run.updated_at),
            "deadline_at": _iso(run.deadline_at), "finished_at": _iso(run.finished_at),
            "current_step": run.current_step, "failed_step": run.failed_step, "error": run.error,
            "resumes": run.resumes, "steps": list(run.steps), "done_steps": done}


def _pipeline(name: str):
    app.loader.import_default_modules()
    try:
        return pipeline_named(name)
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from None


def _done_steps(run: PipelineRun, records: dict[str, StepRecord]) -> list[str]:
    return [name for name in run.steps if name in records and records[name].status is StepStatus.DONE]


def _run_row(run: PipelineRun, *, now: datetime, done: list[str]) -> tuple[str, ...]:
    return (run.run_id, run.pipeline, run.state(now), _instant(run.created_at), run.entry or "-",
            run.failed_step or run.current_step or "-", f"{len(done)}/{len(run.steps)}", str(run.resumes),
            _short(run.error or ""))


def _step_row(record: StepRecord) -> tuple[str, ...]:
    return (record.step, record.status.value, str(record.attempts), _instant(record.finished_at),
            (record.checksum or "-")[:16], _short(record.error or (record.output or {}).get("status", "")))


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= DETAIL_WIDTH else text[:DETAIL_WIDTH - 3] + "..."


def _instant(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()

"""The app's side of the dashboard's actions (``monitoring.web.actions.DashboardActions``).

Run-now sends the entry's task with its args, kwargs and message options (queue, expires,
time limit) and the entry's headers (name, instant = now, policy, retry), as beat's dispatch
does, so the run is guarded and recorded as a run of that entry. It is to be switched to
``tasks.trigger.trigger_entry`` (the path of ``beatkeeper trigger``) once that lands.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import redis

from monitoring.pipelines import PipelineStoreError
from monitoring.web.actions import ActionRefused, DashboardActions
from schedules.entry import EntrySpec
from tasks import entry_policy, headers
from tasks.identity import dead_letters
from tasks.pipeline_steps import resume_pipeline


def run_entry_now(app: Any, spec: EntrySpec, *, who: str, now: datetime | None = None) -> str:
    """Send one run of ``spec`` now, as beat would at instant ``now``; returns its task id."""
    now = now or datetime.now(timezone.utc)
    options = entry_policy.message_options(spec)
    options["headers"] = {**headers.dispatch_headers(spec.name, now, policy=entry_policy.policy_fields(spec)),
                          "beatkeeper_triggered_by": who}
    if spec.retry is not None:
        options["headers"][headers.RETRY] = json.dumps(spec.retry.as_fields())
    task = app.tasks.get(spec.task)
    if task is None:
        return app.send_task(spec.task, spec.args, spec.kwargs, **options).id
    return task.apply_async(spec.args, spec.kwargs, **options).id


def requeue_dead_letter(app: Any, client: redis.Redis, run_id: str, *, who: str) -> str:
    """Send a dead-lettered run's task again, by hand (no entry header: a new run, not the dead one)."""
    letter = next((x for x in dead_letters(client, limit=10_000) if x.run_id == run_id), None)
    if letter is None:
        raise ActionRefused(f"no dead letter {run_id}")
    result = app.send_task(letter.task, letter.args, letter.kwargs,
                           headers={"beatkeeper_triggered_by": who, "beatkeeper_requeued_from": run_id})
    return f"dead letter {run_id}: {letter.task} sent again as task {result.id}"


def dashboard_actions(app: Any, client: redis.Redis, specs: Callable[[], Mapping[str, EntrySpec]]) -> DashboardActions:
    """The actions the monitor's dashboard offers, bound to ``app``."""
    def run_entry(name: str, who: str) -> str:
        spec = specs().get(name)
        if spec is None:
            raise ActionRefused(f"no registered entry {name!r}")
        return run_entry_now(app, spec, who=who)

    def resume_run(run_id: str) -> str:
        app.loader.import_default_modules()  # the pipeline definitions live in the task modules
        try:
            resumed = resume_pipeline(app, run_id, now=datetime.now(timezone.utc).timestamp())
        except PipelineStoreError as exc:
            raise ActionRefused(str(exc)) from None
        return f"resumed run {resumed.run_id} of {resumed.pipeline} from step {resumed.from_step}"

    return DashboardActions(client=client, run_entry=run_entry, resume_run=resume_run,
                            requeue=lambda run_id, who: requeue_dead_letter(app, client, run_id, who=who))

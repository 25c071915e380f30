"""The app's side of the dashboard's actions (``monitoring.web.actions.DashboardActions``).

Run-now and requeue are the paths of ``beatkeeper trigger`` and ``beatkeeper dead-letters
--requeue`` (:mod:`tasks.actions.trigger`): the dashboard sends nothing the command line would not.
A refusal (an entry beat has not published, an unknown dead letter) becomes the page's one line.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import redis

from monitoring.pipelines import PipelineStoreError
from monitoring.web.actions import ActionRefused, DashboardActions
from tasks.pipelines.steps import resume_pipeline
from tasks.actions.trigger import TriggerError, requeue_dead_letter, trigger_entry


def dashboard_actions(app: Any, client: redis.Redis) -> DashboardActions:
    """The actions the monitor's dashboard offers, bound to ``app``."""
    def run_entry(name: str, who: str) -> str:
        try:
            return trigger_entry(app, name, who=who)
        except TriggerError as exc:
            raise ActionRefused(str(exc)) from None

    def requeue(run_id: str, who: str) -> str:
        try:
            task_id = requeue_dead_letter(app, run_id, who=who)
        except TriggerError as exc:
            raise ActionRefused(str(exc)) from None
        return f"dead letter {run_id}: sent again as task {task_id}"

    def resume_run(run_id: str) -> str:
        app.loader.import_default_modules()  # the pipeline definitions live in the task modules
        try:
            resumed = resume_pipeline(app, run_id, now=datetime.now(timezone.utc).timestamp())
        except PipelineStoreError as exc:
            raise ActionRefused(str(exc)) from None
        return f"resumed run {resumed.run_id} of {resumed.pipeline} from step {resumed.from_step}"

    return DashboardActions(client=client, run_entry=run_entry, resume_run=resume_run, requeue=requeue)

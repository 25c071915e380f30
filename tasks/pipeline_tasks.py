"""The platform's pipeline housekeeping: the automatic resume of stalled pipeline runs.

Its schedule entry is ``beatkeeper-pipeline-resume-stalled`` (``schedules.platform``, every
5 minutes while a pipeline is configured).
"""
from __future__ import annotations

import time

from tasks.application import app
from tasks.pipeline_steps import DEFAULT_MAX_AUTO_RESUMES, resume_stalled_pipelines


@app.task(name="beatkeeper.pipeline.resume_stalled", bind=True, overlap="skip", lock_key=[])
def resume_stalled(self, max_resumes: int = DEFAULT_MAX_AUTO_RESUMES) -> list[str]:
    """Resume pipeline runs stalled past their step's ``max_runtime_s``; returns their run ids."""
    return [r.run_id for r in resume_stalled_pipelines(self.app, now=time.time(), max_resumes=max_resumes)]

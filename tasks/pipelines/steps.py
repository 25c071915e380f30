"""Running pipelines: starting a run, executing a step idempotently, resuming a run.

A step task's body calls :func:`run_step`, which wraps the step's real work:

1. *claim* the step in the pipeline store (``monitoring.pipelines``): a step already done for
   this run returns its stored output without running (so a resumed chain, or a message
   redelivered after its worker died, repeats nothing); a run no longer running (failed,
   abandoned) stops the chain there;
2. run the work; a transient error (the step's ``retry_on``) is retried with exponential
   backoff and jitter, each attempt a ``retry`` row in the history; any other error, or the
   last retry's, fails the step and the run, records a ``pipeline_failed`` event for the
   monitor, and ends the chain (Celery sends no later step after a failure);
3. record the completion (checksum, output) and the next step's progress deadline in one
   transaction, then return: Celery sends the next step.

:func:`start_pipeline` (called by a pipeline's start task) refuses while another run of the
same pipeline is running and not stalled, so the exclusion covers the whole run and not
only the start task, which returns at once. :func:`resume_pipeline` rebuilds the chain from
the first step not done.
"""
from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from celery.exceptions import Ignore, Reject, Retry

from monitoring.events import EventKind, record_event
from monitoring.pipelines import (PipelineRun, PipelineRunStatus, PipelineStore, ResumeRefused, StepStatus,
                                  UnknownPipelineRun)
from tasks import headers
from tasks.guard.overlap import SKIPPED_COUNTS_KEY
from tasks.pipelines.definition import Pipeline, Step, build, pipeline_named
from tasks.infra.redis_client import app_redis
from monitoring.run_status import RunStatus
from tasks.guard.run import RunSkipped

log = logging.getLogger(__name__)

FAILED_EVENT = EventKind.PIPELINE_FAILED
STALLED_EVENT = EventKind.PIPELINE_STALLED
#: Automatic resumes of one run before it is left to a person: a step that hangs every time
#: must not be sent again forever.
DEFAULT_MAX_AUTO_RESUMES = 3


def step_policy(step_max_runtime_s: float) -> dict[str, Any]:
    """The ``@app.task`` options of a step task: one attempt of a run's step at a time (a resume
    racing a slow but live step is skipped, not doubled), its ``long_run`` bound, and
    idempotent (:func:`run_step` returns a done step's stored output): a step message delivered
    again after its worker died unacknowledged sends the next step instead of ending the chain."""
    return {"overlap": "skip", "lock_key": ["pipeline_run_id"], "max_runtime_s": step_max_runtime_s,
            "idempotent": True}


def _utc(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, timezone.utc)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:2000]


# -- a step ------------------------------------------------------------------------------------

def run_step(task: Any, *, pipeline_run_id: str, body: Callable[[], Any]) -> dict[str, Any]:
    """Run one step of run ``pipeline_run_id`` once: ``body()`` does the work and returns a result
    with ``checksum`` and ``as_dict()`` (or a dict). Returns the step's JSON output."""
    store = task.app.beatkeeper.pipelines
    run = store.run(pipeline_run_id)
    if run is None:
        raise UnknownPipelineRun(pipeline_run_id)
    pipeline = pipeline_named(run.pipeline)
    step = pipeline.step_of_task(task.name)
    started = time.time()
    claim = store.claim_step(pipeline_run_id, step.name, task_id=task.request.id or "", now=_utc(started),
                             deadline_at=_utc(started + step.max_runtime_s))
    if claim.kind == "done":
        log.info("pipeline %s run %s: step %s is done already; not run again", pipeline.name, run.run_id, step.name)
        return claim.record.output or {}
    if claim.kind == "inactive":
        log.warning("pipeline %s run %s is %s: step %s not run, chain stopped", pipeline.name, run.run_id,
                    claim.run.status.value, step.name)
        raise Ignore(f"pipeline run {run.run_id} is {claim.run.status.value}")
    try:
        result = body()
    except (Retry, Ignore, Reject):
        raise
    except Exception as exc:
        _step_failed(task, store, pipeline, run, step, exc)
        raise
    output = result if isinstance(result, dict) else result.as_dict()
    checksum = output.get("checksum")
    finished = time.time()
    following = pipeline.after(step.name)
    store.complete_step(pipeline_run_id, step.name, checksum=checksum, output=output, now=_utc(finished),
                        next_step=following and following.name,
                        deadline_at=following and _utc(finished + following.max_runtime_s))
    return output


def _step_failed(task: Any, store: PipelineStore, pipeline: Pipeline, run: PipelineRun, step: Step,
                 exc: Exception) -> None:
    """Retry a transient error while retries are left (raises Retry); else fail the step and the run."""
    retries = task.request.retries or 0
    now = time.time()
    error = _one_line(exc)
    if step.retries(exc) and retries < step.retry.max_retries:
        delay_s = step.retry.delay_s(retries, jitter=random.random())
        store.retry_step(run.run_id, step.name, error=error, now=_utc(now),
                         deadline_at=_utc(now + delay_s + step.max_runtime_s))
        log.warning("pipeline %s run %s: step %s failed (%s); retry %d/%d in %.1f s", pipeline.name, run.run_id,
                    step.name, error, retries + 1, step.retry.max_retries, delay_s)
        raise task.retry(exc=exc, countdown=delay_s, max_retries=step.retry.max_retries)
    if store.fail_step(run.run_id, step.name, error=error, now=_utc(now)):
        record_event(app_redis(task.app), FAILED_EVENT, pipeline.name, at=now, run_id=run.run_id, step=step.name,
                     error=error, attempts=retries + 1, retried=step.retries(exc))


# -- starting and resuming ---------------------------------------------------------------------

@dataclass(frozen=True)
class StartResult:
    """What a start task did: started run ``run_id``, or skipped because ``running_run_id`` runs."""

    pipeline: str
    started: bool
    run_id: str | None
    skipped: str | None = None  # "overlap": another run is running; "duplicate": this start ran before
    running_run_id: str | None = None
    abandoned: tuple[str, ...] = ()  # stalled runs this one superseded

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["abandoned"] = list(self.abandoned)
        return data


def start_pipeline(task: Any, pipeline: Pipeline, *, params: dict[str, Any]) -> StartResult:
    """Start a run of ``pipeline`` from inside its start task: the run id is the start task's id,
    so a redelivered start finds its run instead of making a second one. While another run is
    going, raises ``RunSkipped`` (skipped_overlap) carrying the refusal as the task's result."""
    request = task.request
    run_id = request.id or uuid.uuid4().hex
    store = task.app.beatkeeper.pipelines
    now = time.time()
    first = pipeline.steps[0]
    decision = store.start_run(run_id=run_id, pipeline=pipeline.name, steps=pipeline.step_names, params=params,
                               entry=headers.entry_of(request), now=_utc(now),
                               deadline_at=_utc(now + first.max_runtime_s))
    if decision.already_existed:
        return StartResult(pipeline.name, started=False, run_id=run_id, skipped="duplicate")
    if decision.run is None:
        running = decision.blocked_by.run_id if decision.blocked_by else None
        reason = _record_overlap(task, pipeline, run_id=run_id, running_run_id=running, at=now)
        refused = StartResult(pipeline.name, started=False, run_id=None, skipped="overlap", running_run_id=running)
        # In the history as skipped_overlap, not success; the caller still gets the answer.
        raise RunSkipped(RunStatus.SKIPPED_OVERLAP, reason, result=refused.as_dict())
    setattr(request, headers.PIPELINE_RUN, run_id)  # the start task's own history row names its run
    _send(task.app, store, pipeline, decision.run, done=())
    return StartResult(pipeline.name, started=True, run_id=run_id, abandoned=decision.abandoned)


def _record_overlap(task: Any, pipeline: Pipeline, *, run_id: str, running_run_id: str | None, at: float) -> str:
    reason = f"pipeline {pipeline.name} run {running_run_id} is still running"
    log.warning("%s[%s] skipped: %s", task.name, run_id, reason)
    client = app_redis(task.app)
    with client.pipeline(transaction=False) as pipe:
        record_event(pipe, EventKind.OVERLAP_DETECTED, headers.entry_of(task.request) or task.name, at=at,
                     action="skipped", task_id=run_id, holder_task_id=running_run_id, reason=reason)
        pipe.hincrby(SKIPPED_COUNTS_KEY, task.name, 1)
        pipe.execute()
    return reason


@dataclass(frozen=True)
class ResumeResult:
    run_id: str
    pipeline: str
    from_step: str
    skipped_steps: tuple[str, ...]  # done before: not sent again


def resume_pipeline(app: Any, run_id: str, *, now: float) -> ResumeResult:
    """Continue run ``run_id`` from its first step not done; the done ones are not sent.

    ``now`` (unix seconds) decides whether a running run is stalled. Raises
    :class:`~monitoring.pipelines.ResumeRefused` or :class:`~monitoring.pipelines.UnknownPipelineRun`.
    """
    store = app.beatkeeper.pipelines
    run = store.run(run_id)
    if run is None:
        raise UnknownPipelineRun(run_id)
    pipeline = pipeline_named(run.pipeline)
    done = tuple(name for name, record in store.step_records(run_id).items() if record.status is StepStatus.DONE)
    remaining = pipeline.remaining(done)
    if not remaining:
        reason = "it already succeeded" if run.status is PipelineRunStatus.SUCCEEDED else "every step is done already"
        raise ResumeRefused(run_id, run.status.value, reason)
    resumed = store.resume_run(run_id, next_step=remaining[0].name, now=_utc(now),
                               deadline_at=_utc(now + remaining[0].max_runtime_s))
    _send(app, store, pipeline, resumed, done=done)
    return ResumeResult(run_id, pipeline.name, remaining[0].name,
                        tuple(s for s in pipeline.step_names if s in done))


def resume_stalled_pipelines(app: Any, *, now: float,
                             max_resumes: int = DEFAULT_MAX_AUTO_RESUMES) -> list[ResumeResult]:
    """The automatic resume policy: resume every run stalled at ``now`` (unix seconds) that was
    resumed fewer than ``max_resumes`` times; each stalled run found is a ``pipeline_stalled`` event.

    A worker that died between two steps leaves its run with nothing to send it on (the step's
    redelivered message is a duplicate of a run that succeeded): this is what carries it on.
    """
    resumed = []
    client = app_redis(app)
    for run in app.beatkeeper.pipelines.stalled_runs(now=_utc(now)):
        action = f"left for a person: resumed {run.resumes} time(s) already"
        if run.resumes < max_resumes:
            try:
                resumed.append(resume_pipeline(app, run.run_id, now=now))
                action = "resumed"
            except Exception as exc:  # refused, or unsendable: one run must not keep the others stalled
                action = f"not resumed: {_one_line(exc)}"
        log.warning("pipeline %s run %s stalled at step %s: %s", run.pipeline, run.run_id, run.current_step, action)
        record_event(client, STALLED_EVENT, run.pipeline, at=now, run_id=run.run_id, step=run.current_step,
                     since=run.updated_at.isoformat(), resumes=run.resumes, action=action)
    return resumed


def _send(app: Any, store: PipelineStore, pipeline: Pipeline, run: PipelineRun, *, done: tuple[str, ...]) -> None:
    """Send the chain; a broker that refuses it fails the run at once (``resume`` sends it again)."""
    signature = build(pipeline, run_id=run.run_id, params=run.params, done=done, app=app)
    try:
        signature.apply_async()
    except Exception as exc:
        first = pipeline.remaining(done)[0].name
        store.fail_step(run.run_id, first, error=f"the chain could not be sent: {_one_line(exc)}",
                        now=_utc(time.time()))
        raise

"""Pipelines: an ordered list of steps (Celery tasks) run as one chain under one run id.

Define it, build it, send it later::

    GTFS_STATIC = Pipeline(name="gtfs-static", start_task="beatkeeper.gtfs.start", steps=(
        Step("sync", task="beatkeeper.gtfs.sync", params=("feed_url", "database_url"),
             retry_on=(GtfsDownloadError,), max_runtime_s=1800),
        Step("refresh", task="beatkeeper.gtfs.refresh", params=("database_url",)),
        ...))
    signature = build(GTFS_STATIC, run_id=run_id, params=params)  # a chain; nothing sent yet
    signature.apply_async()

Each step is an *immutable* signature: it takes its inputs from the run's ``params`` (the
same ones on a resume) and never from the previous step's return value, so the chain can be
rebuilt from any step. Every step's message carries the run id twice: as the
``pipeline_run_id`` keyword (the step's record and lock key use it) and as the
``beatkeeper_pipeline_run_id`` header (its history rows carry it).

Why a timer is not enough (refresh at 03:30 "because sync usually ends by then") and why a
bare Celery chain is not either (one failure loses the rest, and it cannot be resumed from
the failed step, celery#5970, #6631): ``tasks.pipelines.steps`` records each step's
completion, so a rebuilt chain skips what is done.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Mapping

from celery import Signature, chain, current_app

from schedules.entry import RetrySpec
from tasks import headers

DEFAULT_STEP_MAX_RUNTIME_S = 1800.0


class PipelineError(ValueError):
    """A pipeline definition or build request that cannot be used; carries the pipeline name."""

    def __init__(self, pipeline: str, problem: str):
        super().__init__(f"pipeline {pipeline!r}: {problem}")
        self.pipeline = pipeline
        self.problem = problem


#: A step's retries unless it says otherwise: a feed or a CDN down for minutes, not seconds.
STEP_RETRY = RetrySpec(max_retries=5, backoff_s=30.0, backoff_max_s=600.0)


@dataclass(frozen=True)
class Step:
    """One step: the task that runs it and the run parameters it is called with.

    ``retry_on``: the exceptions worth retrying (transient); any other error fails the step
    at once. ``max_runtime_s``: how long an attempt may take before the run counts as stalled
    (and a ``long_run`` event is recorded).
    """

    name: str
    task: str
    params: tuple[str, ...] = ()
    retry_on: tuple[type[BaseException], ...] = ()
    retry: RetrySpec = STEP_RETRY
    max_runtime_s: float = DEFAULT_STEP_MAX_RUNTIME_S

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` is transient for this step."""
        return isinstance(exc, self.retry_on)


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of steps and the task that starts a run of them."""

    name: str
    steps: tuple[Step, ...]
    start_task: str

    def __post_init__(self) -> None:
        if not self.steps:
            raise PipelineError(self.name, "has no steps")
        names = [s.name for s in self.steps]
        tasks = [s.task for s in self.steps]
        for label, values in (("step name", names), ("step task", tasks)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise PipelineError(self.name, f"{label} used twice: {', '.join(repeated)}")

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)

    @property
    def params(self) -> frozenset[str]:
        """Every parameter some step is called with."""
        return frozenset(p for s in self.steps for p in s.params)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise PipelineError(self.name, f"has no step {name!r} (steps: {', '.join(self.step_names)})")

    def step_of_task(self, task_name: str) -> Step:
        for step in self.steps:
            if step.task == task_name:
                return step
        raise PipelineError(self.name, f"no step runs task {task_name!r}")

    def after(self, name: str) -> Step | None:
        """The step following ``name``; None after the last."""
        index = self.step_names.index(self.step(name).name)
        return self.steps[index + 1] if index + 1 < len(self.steps) else None

    def remaining(self, done: Collection[str]) -> tuple[Step, ...]:
        """The steps from the first one not in ``done`` to the end.

        From the first not done on, every step runs: a step done *after* a failed one (a
        hand-run, say) is still sent, and its record makes it a no-op.
        """
        for index, step in enumerate(self.steps):
            if step.name not in done:
                return self.steps[index:]
        return ()


def build(pipeline: Pipeline, *, run_id: str, params: Mapping[str, Any], done: Collection[str] = (),
          app: Any = None) -> Signature:
    """The chain of ``pipeline``'s steps for run ``run_id``, starting at the first not in ``done``.

    Raises :class:`PipelineError` when ``params`` lacks a parameter a step needs, or when
    every step is done already (there is nothing to send).
    """
    missing = sorted(pipeline.params - set(params))
    if missing:
        raise PipelineError(pipeline.name, f"missing run parameter(s): {', '.join(missing)}")
    steps = pipeline.remaining(done)
    if not steps:
        raise PipelineError(pipeline.name, f"run {run_id}: every step is done already")
    app = app or current_app
    return chain(*(step_signature(step, run_id=run_id, params=params, app=app) for step in steps), app=app)


def step_signature(step: Step, *, run_id: str, params: Mapping[str, Any], app: Any = None) -> Signature:
    """One step's immutable signature: its parameters and the run id, as keyword and header."""
    kwargs = {"pipeline_run_id": run_id, **{name: params[name] for name in step.params}}
    return (app or current_app).signature(step.task, kwargs=kwargs, immutable=True,
                                          headers={headers.PIPELINE_RUN: run_id})


# -- the registry: how a step task finds its pipeline's definition -------------------------------
_PIPELINES: dict[str, Pipeline] = {}


def register(pipeline: Pipeline) -> Pipeline:
    """Make ``pipeline`` known by name (to its step tasks, the CLI and ``resume``); replaces any
    pipeline of that name."""
    _PIPELINES[pipeline.name] = pipeline
    return pipeline


def pipeline_named(name: str) -> Pipeline:
    try:
        return _PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(_PIPELINES)) or "none"
        raise PipelineError(name, f"is not registered (registered: {known})") from None


def registered_pipelines() -> dict[str, Pipeline]:
    return dict(_PIPELINES)

"""Pipeline runs and step completions, kept in SQL beside the execution history.

A *pipeline run* is one pass through a pipeline's steps under one run id. Its row says where
it is (``running``, ``succeeded``, ``failed``, ``abandoned``), which step is current, and its
*progress deadline*: the instant by which the current step must have finished. A running run
past its deadline is **stalled** (its worker died, or its next step was never sent): that is
derived from the row and ``now``, never stored, so no process has to be alive to mark it.

A *step completion* records that a step of a run finished, with its output's checksum and
its JSON output: running a completed step again is a no-op that returns the stored output,
which is what makes ``resume`` (and a redelivered message) safe.

At most one run per pipeline is ``running``: a partial unique index enforces it in the
database, so two starters racing cannot both win. Instants are parameters (``now``), never
read here.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Connection, Engine, Index, Integer, String, Table, Text, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from monitoring.db import write_transaction
from monitoring.models import UtcDateTime, metadata


class PipelineRunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a step failed for good; ``resume`` continues from it
    ABANDONED = "abandoned"  # stalled, then superseded by a newer run of the same pipeline


class StepStatus(StrEnum):
    RUNNING = "running"
    RETRYING = "retrying"  # failed with a transient error; its retry is scheduled
    DONE = "done"
    FAILED = "failed"


_RUNNING_ONLY = text("status = 'running'")

pipeline_runs = Table(
    "beatkeeper_pipeline_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("pipeline", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("entry", String(255), nullable=False, default=""),  # '' when triggered by hand
    Column("params", Text, nullable=False),  # JSON: what every step is called with
    Column("steps", Text, nullable=False),  # JSON: the step names, in order, the run was built with
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),  # the last progress
    Column("deadline_at", UtcDateTime, nullable=True),  # running: stalled once past this
    Column("finished_at", UtcDateTime, nullable=True),
    Column("current_step", String(64), nullable=True),
    Column("failed_step", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("resumes", Integer, nullable=False, default=0),
    Index("ix_beatkeeper_pipeline_runs_pipeline_created", "pipeline", "created_at"),
    Index("ux_beatkeeper_pipeline_runs_one_running", "pipeline", unique=True,
          sqlite_where=_RUNNING_ONLY, postgresql_where=_RUNNING_ONLY),
)

pipeline_steps = Table(
    "beatkeeper_pipeline_steps",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),  # executions of the body, retries and resumes included
    Column("task_id", String(255), nullable=False),  # of the latest attempt
    Column("started_at", UtcDateTime, nullable=False),  # of the latest attempt
    Column("finished_at", UtcDateTime, nullable=True),
    Column("checksum", String(128), nullable=True),
    Column("output", Text, nullable=True),  # JSON
    Column("error", Text, nullable=True),
)


class PipelineStoreError(Exception):
    """Base of the store's refusals; each carries the run id."""

    def __init__(self, run_id: str, message: str):
        super().__init__(message)
        self.run_id = run_id


class UnknownPipelineRun(PipelineStoreError):
    def __init__(self, run_id: str):
        super().__init__(run_id, f"no pipeline run {run_id!r}")


class ResumeRefused(PipelineStoreError):
    """The run cannot be resumed now; ``status`` is its status, ``reason`` says why."""

    def __init__(self, run_id: str, status: str, reason: str):
        super().__init__(run_id, f"pipeline run {run_id} cannot be resumed: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class PipelineRun:
    run_id: str
    pipeline: str
    status: PipelineRunStatus
    entry: str
    params: dict[str, Any]
    steps: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    deadline_at: datetime | None
    finished_at: datetime | None
    current_step: str | None
    failed_step: str | None
    error: str | None
    resumes: int

    def is_stalled(self, now: datetime) -> bool:
        """Running, but its current step is past its progress deadline."""
        return (self.status is PipelineRunStatus.RUNNING and self.deadline_at is not None
                and now > self.deadline_at)

    def state(self, now: datetime) -> str:
        """The status as shown: ``stalled`` for a running run past its deadline."""
        return "stalled" if self.is_stalled(now) else self.status.value

    @classmethod
    def from_row(cls, row: Any) -> PipelineRun:
        data = dict(row)
        data["status"] = PipelineRunStatus(data["status"])
        data["params"] = json.loads(data["params"])
        data["steps"] = tuple(json.loads(data["steps"]))
        return cls(**data)


@dataclass(frozen=True)
class StepRecord:
    run_id: str
    step: str
    status: StepStatus
    attempts: int
    task_id: str
    started_at: datetime
    finished_at: datetime | None
    checksum: str | None
    output: dict[str, Any] | None
    error: str | None

    @classmethod
    def from_row(cls, row: Any) -> StepRecord:
        data = dict(row)
        data["status"] = StepStatus(data["status"])
        data["output"] = None if data["output"] is None else json.loads(data["output"])
        return cls(**data)


@dataclass(frozen=True)
class RunStart:
    """What ``start_run`` decided. ``run`` is None when ``blocked_by`` (a live run) refused it."""

    run: PipelineRun | None
    blocked_by: PipelineRun | None = None
    abandoned: tuple[str, ...] = ()  # stalled runs this one superseded
    already_existed: bool = False  # a run with this id was started before (a redelivered starter)

    @property
    def started(self) -> bool:
        return self.run is not None and not self.already_existed


@dataclass(frozen=True)
class StepClaim:
    """What ``claim_step`` found: ``claimed`` (run the body), ``done`` (a no-op: ``record`` holds the
    output) or ``inactive`` (the run is no longer running: do nothing, stop the chain)."""

    kind: str
    record: StepRecord | None
    run: PipelineRun


class PipelineStore:
    """Reads and writes pipeline runs. ``engine`` may be a factory, called at each use (fork safety)."""

    def __init__(self, engine: Engine | Callable[[], Engine]):
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine if isinstance(self._engine, Engine) else self._engine()

    # -- starting and resuming --------------------------------------------------------------
    def start_run(self, *, run_id: str, pipeline: str, steps: Sequence[str], params: dict[str, Any],
                  entry: str, now: datetime, deadline_at: datetime) -> RunStart:
        """Create a running run unless another run of ``pipeline`` is running and not stalled.

        Stalled runs of the pipeline are marked ``abandoned`` in the same transaction.
        """
        existing = self.run(run_id)
        if existing is not None:
            return RunStart(run=existing, already_existed=True)
        try:
            with self._writing() as conn:
                abandoned = []
                for live in self._running(conn, pipeline):
                    if not live.is_stalled(now):
                        return RunStart(run=None, blocked_by=live)
                    abandoned.append(live.run_id)
                    conn.execute(update(pipeline_runs).where(pipeline_runs.c.run_id == live.run_id).values(
                        status=PipelineRunStatus.ABANDONED.value, finished_at=now, deadline_at=None,
                        error=f"stalled (no progress since {live.updated_at.isoformat()}); superseded by {run_id}"))
                conn.execute(insert(pipeline_runs).values(
                    run_id=run_id, pipeline=pipeline, status=PipelineRunStatus.RUNNING.value, entry=entry,
                    params=json.dumps(params, sort_keys=True), steps=json.dumps(list(steps)), created_at=now,
                    updated_at=now, deadline_at=deadline_at, current_step=steps[0], resumes=0))
        except IntegrityError:  # another starter inserted its run between our read and our insert
            existing = self.run(run_id)
            if existing is not None:
                return RunStart(run=existing, already_existed=True)
            with self.engine.connect() as conn:
                live = self._running(conn, pipeline)
            return RunStart(run=None, blocked_by=live[0] if live else None)
        return RunStart(run=self.run(run_id), abandoned=tuple(abandoned))

    def resume_run(self, run_id: str, *, next_step: str, now: datetime, deadline_at: datetime) -> PipelineRun:
        """Make a failed, abandoned or stalled run running again from ``next_step``.

        Raises :class:`ResumeRefused` for a run that succeeded, one still making progress, or
        when another run of the same pipeline is running.
        """
        try:
            with self._writing() as conn:
                run = self._locked_run(conn, run_id)
                if run.status is PipelineRunStatus.SUCCEEDED:
                    raise ResumeRefused(run_id, run.status.value, "it already succeeded")
                if run.status is PipelineRunStatus.RUNNING and not run.is_stalled(now):
                    raise ResumeRefused(run_id, run.status.value, (
                        f"it is still running (step {run.current_step}, stalled only after "
                        f"{run.deadline_at.isoformat() if run.deadline_at else '?'})"))
                conn.execute(update(pipeline_runs).where(pipeline_runs.c.run_id == run_id).values(
                    status=PipelineRunStatus.RUNNING.value, current_step=next_step, updated_at=now,
                    deadline_at=deadline_at, finished_at=None, failed_step=None, error=None,
                    resumes=pipeline_runs.c.resumes + 1))
        except IntegrityError:
            with self.engine.connect() as conn:
                live = self._running(conn, run.pipeline)
            other = live[0].run_id if live else "?"
            raise ResumeRefused(run_id, run.status.value, f"run {other} of {run.pipeline} is running") from None
        return self.run(run_id)

    # -- step progress ----------------------------------------------------------------------
    def claim_step(self, run_id: str, step: str, *, task_id: str, now: datetime,
                   deadline_at: datetime) -> StepClaim:
        """Begin an attempt of ``step``, unless it is done already or its run is not running."""
        with self._writing() as conn:
            run = self._locked_run(conn, run_id)
            record = self._step(conn, run_id, step)
            if record is not None and record.status is StepStatus.DONE:
                return StepClaim("done", record, run)
            if run.status is not PipelineRunStatus.RUNNING:
                return StepClaim("inactive", record, run)
            values = dict(status=StepStatus.RUNNING.value, task_id=task_id, started_at=now, finished_at=None)
            if record is None:
                conn.execute(insert(pipeline_steps).values(run_id=run_id, step=step, attempts=1, **values))
            else:
                conn.execute(_step_update(run_id, step).values(attempts=pipeline_steps.c.attempts + 1, **values))
            self._progress(conn, run_id, now=now, current_step=step, deadline_at=deadline_at)
            return StepClaim("claimed", self._step(conn, run_id, step), run)

    def retry_step(self, run_id: str, step: str, *, error: str, now: datetime, deadline_at: datetime) -> None:
        """An attempt failed with a transient error; its retry is due before ``deadline_at``."""
        with self._writing() as conn:
            conn.execute(_step_update(run_id, step).values(status=StepStatus.RETRYING.value, error=error,
                                                           finished_at=now))
            self._progress(conn, run_id, now=now, current_step=step, deadline_at=deadline_at)

    def complete_step(self, run_id: str, step: str, *, checksum: str | None, output: dict[str, Any],
                      now: datetime, next_step: str | None, deadline_at: datetime | None) -> None:
        """Record ``step`` done; the run moves on to ``next_step`` (or succeeds when None)."""
        with self._writing() as conn:
            run = self._locked_run(conn, run_id)
            conn.execute(_step_update(run_id, step).values(
                status=StepStatus.DONE.value, finished_at=now, checksum=checksum, error=None,
                output=json.dumps(output, sort_keys=True, default=str)))
            if run.status is not PipelineRunStatus.RUNNING:
                return  # abandoned meanwhile: the step's work is recorded, the run stays as it is
            if next_step is None:
                conn.execute(_run_update(run_id).values(
                    status=PipelineRunStatus.SUCCEEDED.value, updated_at=now, finished_at=now,
                    current_step=None, deadline_at=None))
            else:
                self._progress(conn, run_id, now=now, current_step=next_step, deadline_at=deadline_at)

    def fail_step(self, run_id: str, step: str, *, error: str, now: datetime) -> bool:
        """``step`` failed for good: so does its run. False if the run was no longer running."""
        with self._writing() as conn:
            run = self._locked_run(conn, run_id)
            conn.execute(_step_update(run_id, step).values(status=StepStatus.FAILED.value, error=error,
                                                           finished_at=now))
            if run.status is not PipelineRunStatus.RUNNING:
                return False
            conn.execute(_run_update(run_id).values(
                status=PipelineRunStatus.FAILED.value, failed_step=step, error=error, updated_at=now,
                finished_at=now, deadline_at=None))
            return True

    # -- reading ----------------------------------------------------------------------------
    def run(self, run_id: str) -> PipelineRun | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(pipeline_runs).where(pipeline_runs.c.run_id == run_id)).mappings().first()
        return None if row is None else PipelineRun.from_row(row)

    def runs(self, *, pipeline: str | None = None, limit: int = 20) -> list[PipelineRun]:
        """The latest runs (of one pipeline, if given), newest first."""
        statement = select(pipeline_runs)
        if pipeline is not None:
            statement = statement.where(pipeline_runs.c.pipeline == pipeline)
        statement = statement.order_by(pipeline_runs.c.created_at.desc(), pipeline_runs.c.run_id).limit(limit)
        with self.engine.connect() as conn:
            return [PipelineRun.from_row(row) for row in conn.execute(statement).mappings()]

    def stalled_runs(self, *, now: datetime) -> list[PipelineRun]:
        """Running runs past their progress deadline (for the monitor and ``pipeline runs``)."""
        statement = select(pipeline_runs).where(pipeline_runs.c.status == PipelineRunStatus.RUNNING.value,
                                                pipeline_runs.c.deadline_at < now)
        with self.engine.connect() as conn:
            return [PipelineRun.from_row(row) for row in conn.execute(statement).mappings()]

    def step_records(self, run_id: str) -> dict[str, StepRecord]:
        """The run's step records by step name (steps never started have none)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(pipeline_steps).where(pipeline_steps.c.run_id == run_id)).mappings()
            return {row["step"]: StepRecord.from_row(row) for row in rows}

    # -- helpers ----------------------------------------------------------------------------
    def _writing(self):  # a context manager: the SQLite write lock up front
        return write_transaction(self.engine)

    def _locked_run(self, conn: Connection, run_id: str) -> PipelineRun:
        row = conn.execute(select(pipeline_runs).where(pipeline_runs.c.run_id == run_id)
                           .with_for_update()).mappings().first()
        if row is None:
            raise UnknownPipelineRun(run_id)
        return PipelineRun.from_row(row)

    def _running(self, conn: Connection, pipeline: str) -> list[PipelineRun]:
        rows = conn.execute(select(pipeline_runs).where(pipeline_runs.c.pipeline == pipeline,
                                                        pipeline_runs.c.status == PipelineRunStatus.RUNNING.value)
                            .with_for_update()).mappings()
        return [PipelineRun.from_row(row) for row in rows]

    def _step(self, conn: Connection, run_id: str, step: str) -> StepRecord | None:
        row = conn.execute(select(pipeline_steps).where(pipeline_steps.c.run_id == run_id,
                                                        pipeline_steps.c.step == step)).mappings().first()
        return None if row is None else StepRecord.from_row(row)

    def _progress(self, conn: Connection, run_id: str, *, now: datetime, current_step: str,
                  deadline_at: datetime | None) -> None:
        conn.execute(_run_update(run_id).where(pipeline_runs.c.status == PipelineRunStatus.RUNNING.value).values(
            current_step=current_step, updated_at=now, deadline_at=deadline_at))


def _run_update(run_id: str):
    return update(pipeline_runs).where(pipeline_runs.c.run_id == run_id)


def _step_update(run_id: str, step: str):
    return update(pipeline_steps).where(pipeline_steps.c.run_id == run_id, pipeline_steps.c.step == step)

"""One execution of a task as the middlewares see it: the Run going in, the Outcome coming out."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitoring.run_status import RunStatus  # noqa: F401 (the writers' vocabulary, defined once there)
from schedules.entry import RetrySpec
from tasks.policy import RunPolicy


@dataclass
class Run:
    """One execution attempt of a task, built by the guard before any middleware runs."""

    task_name: str
    task_id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    policy: RunPolicy
    lock_key: str | None  # None when the policy takes no lock (overlap=allow)
    received_at: float  # unix seconds, when the guard took the run (before any waiting)
    started_at: float | None = None  # unix seconds, when the body began; None if it never did
    entry: str = ""  # the schedule entry; '' for a hand-triggered run
    fire_at: datetime | None = None  # the scheduled instant; None for a hand-triggered run
    retries: int = 0
    redelivered: bool = False  # the broker delivered this message before (worker lost, timeout)
    idempotent: bool = False  # the task declares that running its body again repeats nothing
    hostname: str = ""
    expires_at: float | None = None  # unix seconds; a run still waiting then gives up as expired
    handoff_token: str | None = None  # the lock token a retry may take over from its predecessor
    beat_fence: str | None = None  # the sending beat's fencing token (header text); None: not from beat
    entry_retry: RetrySpec | None = None  # the entry's retry policy as beat published it; None: the task's own
    fencing_token: int | None = None  # set by the overlap middleware once the lock is held
    lost: list["LostRun"] = field(default_factory=list)  # predecessors found dead on acquire
    state: dict[str, Any] = field(default_factory=dict)  # per-middleware scratch space, keyed by owner


@dataclass(frozen=True)
class Skip:
    """Returned by ``before_run`` to stop a run before its body executes."""

    status: RunStatus
    reason: str
    #: False when the skipped delivery shares its task id with the run that did execute: its
    #: status must not overwrite that run's result in the backend.
    store_result: bool = True


class RunSkipped(Exception):
    """Raised by a task body that finds its work must not run now (a pipeline start while a run
    is going): the run ends with ``status`` and ``reason`` in the history instead of success,
    and the task still returns ``result`` to its caller."""

    def __init__(self, status: RunStatus, reason: str, *, result: Any = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.result = result


@dataclass(frozen=True)
class Outcome:
    """How a run ended, handed to every ``after_run``."""

    status: RunStatus
    finished_at: float  # unix seconds
    error_type: str | None = None
    error_message: str | None = None
    reason: str | None = None  # why a run was skipped or expired

    @classmethod
    def of_error(cls, status: RunStatus, exc: BaseException, *, finished_at: float) -> "Outcome":
        return cls(status=status, finished_at=finished_at, error_type=type(exc).__name__,
                   error_message=str(exc)[:2000])


@dataclass(frozen=True)
class LostRun:
    """A run whose lock expired before it released it: its worker died (or stalled past its TTL)."""

    task_name: str
    task_id: str
    lock_key: str
    fencing_token: int | None
    started_at: float | None
    hostname: str
    entry: str
    detected_at: float  # unix seconds
    detected_by: str  # the task id of the run that found it

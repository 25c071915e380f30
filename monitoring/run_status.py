"""How a run ends: the one status vocabulary. The worker's guard writes these values, the
execution history stores and validates them, the monitor and the dashboard read them."""
from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """How a run ended; the execution history stores these values."""

    SUCCESS = "success"
    FAILURE = "failure"
    RETRY = "retry"  # the body asked for a retry; a new run follows
    SKIPPED_OVERLAP = "skipped_overlap"  # the previous run of the same job still held the lock
    SKIPPED_PAUSED = "skipped_paused"
    SKIPPED_BUDGET = "skipped_budget"
    EXPIRED = "expired"  # reached a worker (or waited) past its ``expires``: never ran
    LOST = "lost"  # started, then its worker died: its lock expired before it released
    SKIPPED_DUPLICATE = "skipped_duplicate"  # its run id was already running or done (the run-identity middleware)
    DEAD_LETTERED = "dead_lettered"  # its workers died more often than the redelivery cap allows

    @property
    def ran(self) -> bool:
        """Whether the body executed (for a LOST run: started)."""
        return self in (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.RETRY, RunStatus.LOST)

    @property
    def celery_state(self) -> str:
        """The state stored in Celery's result backend for runs that never executed."""
        return self.value.upper()


#: Every status a run ends with.
RUN_STATUSES = tuple(status.value for status in RunStatus)
#: Statuses of runs whose body executed to an end, so a duration means something.
FINISHED_STATUSES = (RunStatus.SUCCESS.value, RunStatus.FAILURE.value, RunStatus.RETRY.value)

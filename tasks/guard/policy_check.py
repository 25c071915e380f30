"""A run whose policy cannot be used fails, on record.

The guard resolves each run's policy from what beat published and the task's declaration
(``tasks.policy``). ``beatkeeper check`` refuses every bad value it can see, so a bad one
reaching a worker means a stale published policy or a task changed under a running beat.
Such a run must not execute under a guessed policy, nor vanish: this middleware, inside
history and metrics, raises the error, so the run is recorded as a ``failure`` (history row,
metric, and the monitor's ``run_failed`` alert) and its message is acknowledged.
"""
from __future__ import annotations

from tasks.guard.middleware import Middleware
from tasks.guard.run import Run, Skip

POLICY_PROBLEM = "policy_problem"  # run.state key: the PolicyError the guard met building the run


class PolicyCheckMiddleware(Middleware):
    """Fails a run whose policy could not be resolved (the error is kept in ``run.state``)."""

    def before_run(self, run: Run) -> Skip | None:
        problem = run.state.get(POLICY_PROBLEM)
        if problem is not None:
            raise problem
        return None

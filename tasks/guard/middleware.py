"""The extension point around every task run: an ordered list of middlewares on the app.

The guard (``tasks.guard.task.GuardedTask``, the app's default task base) builds a ``Run`` and:

1. calls ``before_run(run)`` on each middleware in list order; the first that returns a
   ``Skip`` stops the walk and the body does not execute;
2. runs the body (unless skipped);
3. calls ``after_run(run, outcome)`` in reverse order on every middleware whose
   ``before_run`` returned None, so each one releases exactly what it took.

Outer middlewares (history, metrics, run identity) therefore see every outcome, skips
included; inner ones (overlap, long-run) only runs that got past the outer ones.
The order is declared in one place, ``tasks.guard.standard_middlewares``; the app's list is
``app.beatkeeper.middlewares`` (``tasks.wiring``), which ``replace(middlewares=...)`` swaps (tests,
or a deployment that adds its own). A plain run (a task with no schedule
entry and no declared policy) passes through each middleware's ``for_plain_runs()`` variant:
overlap leaves it out, the budget only observes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from tasks.guard.run import LostRun, Outcome, Run, Skip


class Middleware:
    """Base class: every hook is a no-op. Instances are shared by all threads of a worker,
    so per-run state goes in ``run.state`` (keyed by the middleware), never on ``self``."""

    def before_run(self, run: "Run") -> "Skip | None":
        """Before the body: take what the run needs, or return a Skip to stop it."""
        return None

    def after_run(self, run: "Run", outcome: "Outcome") -> None:
        """After the body (or after a later middleware's Skip): release what ``before_run`` took."""

    def retry_headers(self, run: "Run") -> Mapping[str, str]:
        """Extra message headers the retry of ``run`` must carry (called inside ``task.retry``)."""
        return {}

    def on_run_lost(self, lost: "LostRun") -> None:
        """A previous run was found dead: its lock expired before it released it."""

    def on_expired(self, run: "Run") -> None:
        """A message reached a worker after its ``expires`` and was dropped without running."""

    def for_plain_runs(self) -> "Middleware | None":
        """The middleware a *plain* run passes through instead (``tasks.guard.task`` says which runs are
        plain: no schedule entry, no declared policy): itself by default, None to leave it out,
        or a variant that observes without refusing."""
        return self

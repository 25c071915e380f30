"""The extension point around every task run: an ordered list of middlewares on the app.

The guard (``tasks.guard.task.GuardedTask``, the app's default task base) builds a ``Run`` and:

1. calls ``before_run(run)`` on each middleware in list order; the first that returns a
   ``Skip`` stops the walk and the body does not execute;
2. runs the body (unless skipped);
3. calls ``after_run(run, outcome)`` in reverse order on every middleware whose
   ``before_run`` returned None, so each one releases exactly what it took.

Outer middlewares (history, metrics, run identity) therefore see every outcome, skips
included; inner ones (overlap, long-run) only runs that got past the outer ones.
The list is set in one place, ``tasks.guard.standard_middlewares``; ``set_middlewares``
replaces it (tests, or a deployment that adds its own). A plain run (a task with no schedule
entry and no declared policy) passes through each middleware's ``for_plain_runs()`` variant:
overlap leaves it out, the budget only observes.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    from tasks.guard.run import LostRun, Outcome, Run, Skip

_ATTRIBUTE = "beatkeeper_middlewares"
_PLAIN_ATTRIBUTE = "beatkeeper_plain_middlewares"  # (the list it was derived from, its plain variant)
_install_lock = threading.Lock()


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


def set_middlewares(app: Any, middlewares: Sequence[Middleware]) -> None:
    """Install the ordered middleware list on ``app`` (replacing any previous one)."""
    setattr(app, _ATTRIBUTE, tuple(middlewares))


def middlewares_of(app: Any, *, default: Callable[[Any], Sequence[Middleware]]) -> tuple[Middleware, ...]:
    """The app's middleware list, installed from ``default(app)`` on first use."""
    installed = getattr(app, _ATTRIBUTE, None)
    if installed is None:
        with _install_lock:
            installed = getattr(app, _ATTRIBUTE, None)
            if installed is None:
                set_middlewares(app, default(app))
                installed = getattr(app, _ATTRIBUTE)
    return installed


def plain_middlewares_of(app: Any, *, default: Callable[[Any], Sequence[Middleware]]) -> tuple[Middleware, ...]:
    """The list a plain run passes through: each middleware's ``for_plain_runs()``, derived once
    from the app's current list (again whenever ``set_middlewares`` replaced it)."""
    full = middlewares_of(app, default=default)
    derived = getattr(app, _PLAIN_ATTRIBUTE, None)
    if derived is None or derived[0] is not full:
        plain = tuple(v for v in (m.for_plain_runs() for m in full) if v is not None)
        derived = (full, plain)
        setattr(app, _PLAIN_ATTRIBUTE, derived)
    return derived[1]

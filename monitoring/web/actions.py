"""What the dashboard's buttons do, behind a small protocol.

``monitoring`` never imports ``tasks`` (the layering test): sending a task is the app's
business. The composition root (``tasks/cli/monitor.py``) builds :class:`DashboardActions`
with the functions that need the app (run an entry now, resume a pipeline run, requeue a
dead letter); pausing and resuming are Redis writes this package does itself
(``monitoring.pauses``, the same store ``beatkeeper pause`` writes). Every action is
recorded as a ``dashboard_action`` event naming who did it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from monitoring.events import EventKind, record_event
from monitoring.pauses import PauseStore, PauseUntilInPast

ACTION_EVENT = EventKind.DASHBOARD_ACTION


class ActionRefused(Exception):
    """An action that cannot be done; its message is one line for the page."""


class Actions(Protocol):
    """The dashboard's actions; each returns one line saying what was done, or raises ActionRefused."""

    def run_now(self, entry: str, *, who: str) -> str: ...

    def pause(self, name: str, *, until_s: float | None, reason: str, who: str) -> str: ...

    def resume(self, name: str, *, who: str) -> str: ...

    def resume_pipeline(self, run_id: str, *, who: str) -> str: ...

    def requeue_dead_letter(self, run_id: str, *, who: str) -> str: ...


@dataclass
class DashboardActions:
    """:class:`Actions` with pause/resume done here and the rest injected by the app.

    ``run_entry(entry, who) -> task_id`` must be the path of ``beatkeeper trigger``;
    ``resume_run(run_id) -> str`` and ``requeue(run_id, who) -> str`` return their one line.
    Each injected function raises ``ActionRefused`` (or ``LookupError``/``ValueError``) to refuse.
    """

    client: redis.Redis
    run_entry: Callable[[str, str], str]
    resume_run: Callable[[str], str]
    requeue: Callable[[str, str], str]
    clock: Callable[[], float] = time.time

    def run_now(self, entry: str, *, who: str) -> str:
        task_id = self._refusing(lambda: self.run_entry(entry, who))
        self._record("run_now", entry, who, task_id=task_id)
        return f"{entry}: sent now as task {task_id}"

    def pause(self, name: str, *, until_s: float | None, reason: str, who: str) -> str:
        try:
            pause = PauseStore(self.client).pause(name, now=self.clock(), until=until_s, reason=reason, by=who)
        except PauseUntilInPast as exc:
            raise ActionRefused(str(exc)) from None
        self._record("pause", name, who, until=until_s, reason=reason)
        return pause.describe()

    def resume(self, name: str, *, who: str) -> str:
        if not PauseStore(self.client).resume(name, now=self.clock()):
            raise ActionRefused(f"{name} is not paused")
        self._record("resume", name, who)
        return f"{name} resumed by {who}"

    def resume_pipeline(self, run_id: str, *, who: str) -> str:
        line = self._refusing(lambda: self.resume_run(run_id))
        self._record("resume_pipeline", run_id, who)
        return line

    def requeue_dead_letter(self, run_id: str, *, who: str) -> str:
        line = self._refusing(lambda: self.requeue(run_id, who))
        self._record("requeue_dead_letter", run_id, who)
        return line

    def _record(self, action: str, subject: str, who: str, **data: object) -> None:
        record_event(self.client, ACTION_EVENT, subject, at=self.clock(), action=action, who=who, **data)

    @staticmethod
    def _refusing(call: Callable[[], str]) -> str:
        try:
            return call()
        except ActionRefused:
            raise
        except (LookupError, ValueError) as exc:
            raise ActionRefused(str(exc).strip("'\"")) from None

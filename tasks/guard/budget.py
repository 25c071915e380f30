"""The runtime budget: at most N runs of a task per rolling hour, the guard against a bug that
enqueues a task in a loop.

Each task has a sorted set of the instants of the runs it admitted (``monitoring.metrics``
names the keys: the metrics read the same windows). Admitting a run is one Lua call: drop
instants older than an hour, and if fewer than the budget remain, add this run's. A run
beyond the budget does not execute: it ends as ``skipped_budget`` and, once per hour per
task, raises a ``budget_exceeded`` event for the monitor to alert on.

A task's budget has one definition, ``schedules.guards.task_budgets``, first that is set
wins: the schedule entries naming it (their ``max_runs_per_hour``; with several entries, the
largest), the task's declaration (``@app.task(max_runs_per_hour=120)``),
``BEATKEEPER_MAX_RUNS_PER_HOUR`` (default 1000). ``beatkeeper check`` refuses a schedule that
plans more runs than that; beat publishes the result (``tasks.policy.publish_entry_policies``)
and the workers read it from there, never from the schedule file. Every delivery counts, even
several sharing one task id.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from typing import Any, Callable

import redis

from monitoring.events import EventKind, record_event
from monitoring.metrics import INVOCATION_TASKS_KEY, INVOCATION_WINDOW_S, invocation_window_key
from monitoring.namespace import namespaced
from schedules.settings import DEFAULT_MAX_RUNS_PER_HOUR, ScheduleSettings
from tasks.guard.middleware import Middleware
from tasks.policy import PublishedPolicies
from monitoring.run_status import RunStatus
from tasks.guard.run import Run, Skip

log = logging.getLogger(__name__)

ALERTED_PREFIX = namespaced("beatkeeper:budget:alerted:")  # per task: the instant of its latest alert

# KEYS[1] the task's window, KEYS[2] the set of tasks with a window;
# ARGV[1] now, ARGV[2] window seconds, ARGV[3] budget, ARGV[4] member, ARGV[5] task name.
# -> {1, runs in the window including this one} | {0, runs in the window}
_ADMIT = """
    local now = tonumber(ARGV[1])
    local window = tonumber(ARGV[2])
    redis.call('zremrangebyscore', KEYS[1], '-inf', now - window)
    local runs = redis.call('zcard', KEYS[1])
    if runs >= tonumber(ARGV[3]) then
        return {0, runs}
    end
    redis.call('zadd', KEYS[1], now, ARGV[4])
    redis.call('expire', KEYS[1], math.ceil(window) + 60)
    redis.call('sadd', KEYS[2], ARGV[5])
    return {1, runs + 1}
"""

# KEYS[1] the task's last alert instant; ARGV[1] now, ARGV[2] window seconds, ARGV[3] key TTL.
# -> 1 when this refusal is the first of its hour (alert), else 0. Compared on the injected
# clock, not on Redis' TTL, so the hour is the same hour the window counts.
_CLAIM_ALERT = """
    local last = redis.call('get', KEYS[1])
    if last and tonumber(ARGV[1]) - tonumber(last) < tonumber(ARGV[2]) then
        return 0
    end
    redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[3])
    return 1
"""


class BudgetLimits:
    """Each task's runs-per-hour budget, as beat published it (see the module docstring)."""

    def __init__(self, *, default: int = DEFAULT_MAX_RUNS_PER_HOUR, per_entry_task: Mapping[str, int] | None = None,
                 tasks: Mapping[str, Any] | None = None,
                 published: PublishedPolicies | Callable[[], PublishedPolicies] | None = None):
        self.default = default
        self.per_entry_task = dict(per_entry_task or {})
        self.tasks = tasks if tasks is not None else {}
        self.published = published

    def for_task(self, task_name: str) -> int:
        published = self.published() if callable(self.published) else self.published
        if published is not None:
            budget = published.budget_for(task_name)
            if budget:
                return budget
        if task_name in self.per_entry_task:
            return self.per_entry_task[task_name]
        declared = getattr(self.tasks.get(task_name), "max_runs_per_hour", None)
        if declared:
            return int(declared)
        published_default = published.default_budget() if published is not None else None
        return published_default or self.default

    @classmethod
    def from_app(cls, app: Any, *, environ: Mapping[str, str] = os.environ,
                 published: Callable[[], PublishedPolicies] | None = None) -> BudgetLimits:
        """Budgets as beat published them; before any beat published, the declaration or the setting.

        The worker never reads the schedule file: beat computed the budgets from the schedule
        it validated (``schedules.guards.task_budgets``, the rule ``check`` applies). ``published``:
        the published policies (left out: the app's own, ``tasks.wiring``)."""

        try:
            default = ScheduleSettings.from_env(environ).max_runs_per_hour
        except Exception as exc:  # beat refuses to start on it; the worker keeps guarding with the default
            log.warning("budget: %s; using the default budget %d/h", exc, DEFAULT_MAX_RUNS_PER_HOUR)
            default = DEFAULT_MAX_RUNS_PER_HOUR
        return cls(default=default, tasks=app.tasks, published=published or (lambda: app.beatkeeper.published))


class BudgetMiddleware(Middleware):
    """Refuses a run beyond its task's budget (``skipped_budget``) and alerts once per hour per task."""

    def __init__(self, client: redis.Redis, *, limits: BudgetLimits | Callable[[], BudgetLimits],
                 clock: Callable[[], float] = time.time, window_s: float = INVOCATION_WINDOW_S,
                 enforce: bool = True):
        self.client = client
        self.enforce = enforce  # False (plain runs): a run past the budget is counted and alerted on, not refused
        self._limits = limits
        self.clock = clock
        self.window_s = window_s
        self._admit = client.register_script(_ADMIT)
        self._claim_alert = client.register_script(_CLAIM_ALERT)

    @property
    def limits(self) -> BudgetLimits:
        # A factory is resolved on first use: a worker imports every task module before its first run.
        if callable(self._limits):
            self._limits = self._limits()
        return self._limits

    def before_run(self, run: Run) -> Skip | None:
        budget = self.limits.for_task(run.task_name)
        now = self.clock()
        # One member per delivery: messages that share a task id (a hand-made loop) each count.
        member = uuid.uuid4().hex
        admitted, runs = self._admit(keys=[invocation_window_key(run.task_name), INVOCATION_TASKS_KEY],
                                     args=[repr(now), repr(self.window_s), budget, member, run.task_name])
        if int(admitted):
            return None
        if not self.enforce:
            self.client.zadd(invocation_window_key(run.task_name), {member: now})  # every run counts
            self._alert_once(run, budget=budget, runs=int(runs) + 1, now=now)
            return None
        self._alert_once(run, budget=budget, runs=int(runs), now=now)
        return Skip(RunStatus.SKIPPED_BUDGET,
                    reason=f"{run.task_name} already ran {int(runs)} times in the last hour (budget {budget}/h)")

    def _alert_once(self, run: Run, *, budget: int, runs: int, now: float) -> None:
        first = self._claim_alert(keys=[ALERTED_PREFIX + run.task_name],
                                  args=[repr(now), repr(self.window_s), int(self.window_s) + 60])
        if int(first):
            log.warning("budget: %s exceeded its budget of %d runs/hour; further runs are %s", run.task_name,
                        budget, "refused" if self.enforce else "counted, not refused (a plain task)")
            record_event(self.client, EventKind.BUDGET_EXCEEDED, run.task_name, at=now, budget=budget, runs=runs,
                         entry=run.entry, task_id=run.task_id, enforced=self.enforce)

    def for_plain_runs(self) -> "BudgetMiddleware":
        return BudgetMiddleware(self.client, limits=self._limits, clock=self.clock, window_s=self.window_s,
                                enforce=False)


def runs_in_last_hour(client: redis.Redis, task_name: str, *, now: float,
                      window_s: float = INVOCATION_WINDOW_S) -> int:
    """How many runs of ``task_name`` the budget admitted in the window ending at ``now``."""
    return int(client.zcount(invocation_window_key(task_name), f"({now - window_s}", now))

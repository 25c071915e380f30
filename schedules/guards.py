"""Runaway guards computed from the schedule itself, before anything runs.

* Minimum interval: the smallest gap between two consecutive fires of one entry over the
  year after ``now`` (DST changes included) must be at least ``min_interval_s``.
* Invocation budget: the projected peak runs per hour of a task, summed over the enabled
  entries that call it, must not exceed its budget (:func:`task_budgets`, the one definition
  the workers enforce too: beat publishes it), and no entry may plan more runs than its own
  ``max_runs_per_hour``.
* Deployment limits: ``lock_ttl`` within the lock TTL cap, ``expires`` within the broker's
  visibility timeout, the cap itself within the visibility timeout. The workers' policy check
  calls :func:`lock_ttl_problem` too, so ``check``, beat and the workers apply one rule.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from schedules.durations import format_seconds
from schedules.entry import EntrySpec, ScheduleKind
from schedules.errors import Problem
from schedules.killswitch import reason_left_out
from schedules.settings import ScheduleSettings
from schedules.trigger import Trigger

MIN_INTERVAL_HORIZON = timedelta(days=366)  # a year: every DST change of every zone


def min_interval_problem(
    entry: str, kind: ScheduleKind, trigger: Trigger, *, min_interval_s: float, now: datetime
) -> Problem | None:
    """A problem when two consecutive fires of ``trigger`` can be closer than ``min_interval_s``."""
    gap_s = trigger.min_gap_s(now, now + MIN_INTERVAL_HORIZON)
    if gap_s is None or gap_s >= min_interval_s:
        return None
    limit = f"the minimum interval of {format_seconds(min_interval_s)} s"
    if kind is ScheduleKind.EVERY:
        return Problem(entry, "every", f"{format_seconds(gap_s)} s is below {limit}")
    return Problem(entry, kind.value, f"fires as little as {format_seconds(gap_s)} s apart, below {limit}")


def task_budgets(entries: Mapping[str, EntrySpec], *, default_runs_per_hour: int,
                 declared: Mapping[str, int] | None = None) -> dict[str, int]:
    """Each task's runs-per-hour budget, first that is set wins: the largest ``max_runs_per_hour``
    of the entries calling it, the task's declaration (``@app.task(max_runs_per_hour=...)``),
    the settings' default. Tasks named in ``declared`` but by no entry are included."""
    budgets: dict[str, int] = {}
    for spec in entries.values():
        if spec.max_runs_per_hour:
            budgets[spec.task] = max(budgets.get(spec.task, 0), spec.max_runs_per_hour)
    fallback = {task: runs for task, runs in (declared or {}).items() if task not in budgets}
    for spec in entries.values():
        budgets.setdefault(spec.task, fallback.get(spec.task, default_runs_per_hour))
    return {**fallback, **budgets}


def own_rate_problems(entries: Mapping[str, EntrySpec]) -> list[Problem]:
    """An entry that plans more runs per hour than its own ``max_runs_per_hour`` (the worker
    would refuse the surplus as ``skipped_budget``)."""
    problems = []
    for name, spec in entries.items():
        peak = spec.trigger.peak_runs_per_hour()
        if spec.max_runs_per_hour and peak > spec.max_runs_per_hour:
            problems.append(Problem(name, "max_runs_per_hour",
                                    f"{spec.max_runs_per_hour} is below the entry's own peak of "
                                    f"{format_seconds(peak)} runs/hour: the worker would skip the surplus runs"))
    return problems


def projected_runs_per_hour(entries: Mapping[str, EntrySpec], *, settings: ScheduleSettings) -> dict[str, dict[str, float]]:
    """task -> {entry: peak runs/hour} over the entries that are registered (not left out)."""
    per_task: dict[str, dict[str, float]] = {}
    for name, spec in entries.items():
        if reason_left_out(name, enabled=spec.enabled, disabled_names=settings.disabled_names,
                           switched_off=settings.switched_off_variables) is not None:
            continue  # a disabled entry is validated but spends none of the budget
        per_task.setdefault(spec.task, {})[name] = spec.trigger.peak_runs_per_hour()
    return per_task


def budget_problems(entries: Mapping[str, EntrySpec], *, settings: ScheduleSettings,
                    declared: Mapping[str, int] | None = None) -> list[Problem]:
    """One problem per task whose projected runs per hour exceed its budget (registered entries only)."""
    projected = projected_runs_per_hour(entries, settings=settings)
    registered = {name: spec for name, spec in entries.items() if name in projected.get(spec.task, {})}
    budgets = task_budgets(registered, default_runs_per_hour=settings.max_runs_per_hour, declared=declared)
    problems: list[Problem] = []
    for task, per_entry in projected.items():
        total = sum(per_entry.values())
        if total <= budgets[task]:
            continue
        callers = ", ".join(f"'{name}' ({format_seconds(runs)}/h)" for name, runs in per_entry.items())
        problems.append(Problem(
            None, "budget",
            f"task '{task}' is projected at {format_seconds(total)} runs/hour from entries {callers}, "
            f"over its budget of {budgets[task]} runs/hour; raise it with max_runs_per_hour on one of them",
        ))
    return problems


# -- deployment limits ----------------------------------------------------------------------
@dataclass(frozen=True)
class DeploymentLimits:
    """What the lock layer and the broker can hold (from the Celery settings)."""

    max_lock_ttl_s: float  # BEATKEEPER_MAX_LOCK_TTL
    visibility_timeout_s: float  # the Redis broker redelivers an unacked message after this


def lock_ttl_problem(ttl_s: float, *, max_lock_ttl_s: float) -> str | None:
    """Why a lock TTL cannot be used, or None (entries, declarations and the worker's check)."""
    if ttl_s > max_lock_ttl_s:
        return (f"{format_seconds(ttl_s)} s exceeds the lock TTL cap of {format_seconds(max_lock_ttl_s)} s; "
                "lower it or raise BEATKEEPER_MAX_LOCK_TTL")
    return None


def settings_problems(limits: DeploymentLimits) -> list[Problem]:
    """A lock that outlives the visibility timeout would make a redelivered run skip as overlapping."""
    if limits.max_lock_ttl_s > limits.visibility_timeout_s:
        return [Problem(None, "BEATKEEPER_MAX_LOCK_TTL",
                        f"{format_seconds(limits.max_lock_ttl_s)} s exceeds the broker's visibility_timeout of "
                        f"{format_seconds(limits.visibility_timeout_s)} s; raise BEATKEEPER_VISIBILITY_TIMEOUT")]
    return []


def limit_problems(entries: Mapping[str, EntrySpec], limits: DeploymentLimits) -> list[Problem]:
    """Entry values beyond what the lock layer or the broker can hold."""
    problems: list[Problem] = []
    for name, spec in entries.items():
        problem = None if spec.lock_ttl_s is None else lock_ttl_problem(spec.lock_ttl_s,
                                                                        max_lock_ttl_s=limits.max_lock_ttl_s)
        if problem is not None:
            problems.append(Problem(name, "lock_ttl", problem))
        # A message redelivered after the visibility timeout must be past its expiry (dropped),
        # never run a second time beside a run that may still be going.
        if spec.expires_s is not None and spec.expires_s > limits.visibility_timeout_s:
            problems.append(Problem(name, "expires", f"{format_seconds(spec.expires_s)} s exceeds the broker's "
                                    f"visibility_timeout of {format_seconds(limits.visibility_timeout_s)} s; "
                                    "lower it or raise BEATKEEPER_VISIBILITY_TIMEOUT"))
    return problems

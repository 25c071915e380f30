"""Runaway guards computed from the schedule itself, before anything runs.

* Minimum interval: the smallest gap between two consecutive fires of one entry over the
  year after ``now`` (DST changes included) must be at least ``min_interval_s``.
* Invocation budget: the projected peak runs per hour of a task, summed over the enabled
  entries that call it, must not exceed its budget: the settings' default, raised by the
  largest ``max_runs_per_hour`` any entry calling the task declares.
"""
from __future__ import annotations

from collections.abc import Mapping
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


def task_budgets(entries: Mapping[str, EntrySpec], *, default_runs_per_hour: int) -> dict[str, int]:
    """Each task's budget: the default, or the largest ``max_runs_per_hour`` of an entry calling it."""
    budgets: dict[str, int] = {}
    for spec in entries.values():
        explicit = spec.max_runs_per_hour or 0
        budgets[spec.task] = max(budgets.get(spec.task, default_runs_per_hour), explicit)
    return budgets


def projected_runs_per_hour(entries: Mapping[str, EntrySpec], *, settings: ScheduleSettings) -> dict[str, dict[str, float]]:
    """task -> {entry: peak runs/hour} over the entries that are registered (not left out)."""
    per_task: dict[str, dict[str, float]] = {}
    for name, spec in entries.items():
        if reason_left_out(name, enabled=spec.enabled, disabled_names=settings.disabled_names,
                           switched_off=settings.switched_off_variables) is not None:
            continue  # a disabled entry is validated but spends none of the budget
        per_task.setdefault(spec.task, {})[name] = spec.trigger.peak_runs_per_hour()
    return per_task


def budget_problems(entries: Mapping[str, EntrySpec], *, settings: ScheduleSettings) -> list[Problem]:
    """One problem per task whose projected runs per hour exceed its budget."""
    budgets = task_budgets(entries, default_runs_per_hour=settings.max_runs_per_hour)
    problems: list[Problem] = []
    for task, per_entry in projected_runs_per_hour(entries, settings=settings).items():
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

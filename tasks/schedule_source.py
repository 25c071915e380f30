"""Where beat and the CLI get the schedule: the platform's entries plus the user's file,
validated against the tasks this app registers, with the settings from the environment.

Both go through :func:`load_validated_schedule`, so ``beatkeeper check`` and a starting
beat report exactly the same problems: the schedule's own, and everything a worker or beat's
start-up would refuse that the settings and the task code already tell (lock TTLs and
``expires`` against the broker, each task's declared policy, beat's lock timing).
"""
from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from schedules.entry import EntrySpec
from schedules.errors import Problem, ScheduleConfigError
from schedules.guards import DeploymentLimits
from schedules.platform import effective_schedule
from schedules.settings import ScheduleSettings
from schedules.validate import ValidatedSchedule, validate_schedule
from tasks.entry_policy import declared_budgets
from tasks.poison import max_message_bytes
from tasks.policy import PolicyError, declared_fields, policy_problem
from tasks.selfchecks import check_beat_timing


def registered_task_names(app) -> set[str]:
    """Every task name the app registers (its own modules and ``BEATKEEPER_TASK_MODULES``)."""
    app.loader.import_default_modules()
    return set(app.tasks)


def deployment_limits(app) -> DeploymentLimits:
    """The lock TTL cap and the broker's visibility timeout this app runs with."""
    conf = app.conf
    return DeploymentLimits(max_lock_ttl_s=float(conf.max_lock_ttl_s),
                            visibility_timeout_s=float(conf.broker_transport_options.get("visibility_timeout", 3600)))


def load_validated_schedule(app, *, environ: Mapping[str, str] = os.environ,
                            raw: Mapping | None = None, now: datetime | None = None,
                            entries_only: bool = False) -> ValidatedSchedule:
    """Validate ``raw`` (default: the effective schedule from ``environ``).

    ``entries_only``: judge ``raw``'s entries alone, leaving out the task budgets (judged with each
    task's other entries by the caller) and the checks of the task code and the settings (made by
    the caller on the whole schedule): how a dynamic entry is judged (``tasks.dynamic_entries``).

    Raises ``ScheduleConfigError`` (every problem) or ``ConfigFileError`` / ``SettingsError``.
    """
    settings = ScheduleSettings.from_env(environ)
    schedule = effective_schedule(environ) if raw is None else raw
    registered = registered_task_names(app)
    extra = [] if entries_only else _code_and_settings_problems(app)
    try:
        validated = validate_schedule(schedule, settings=settings, registered_tasks=registered,
                                      now=now or datetime.now(timezone.utc), limits=deployment_limits(app),
                                      declared_budgets=declared_budgets(app.tasks), judge_budget=not entries_only)
    except ScheduleConfigError as exc:
        raise ScheduleConfigError(exc.problems + extra) from None
    extra = (_signature_problems(validated.entries, app.tasks)
             + _message_size_problems(validated.entries, max_bytes=max_message_bytes(app)) + extra)
    if extra:
        raise ScheduleConfigError(extra)
    return validated


def _signature_problems(entries: Mapping[str, EntrySpec], tasks: Mapping[str, Any]) -> list[Problem]:
    """What the task's signature rules out: ``args``/``kwargs`` it cannot take (Celery refuses the
    send), a ``lock_key`` naming an argument it does not have (the worker fails every run)."""
    problems = []
    signatures: dict[str, inspect.Signature | None] = {}  # per task: 10,000 entries name a few tasks
    verdicts: dict[tuple[str, str, str], str | None] = {}  # per distinct call
    for name, spec in entries.items():
        if spec.task not in signatures:
            try:
                signatures[spec.task] = inspect.signature(tasks[spec.task].run)
            except (AttributeError, KeyError, TypeError, ValueError):
                signatures[spec.task] = None
        signature = signatures[spec.task]
        if signature is None:
            continue
        call = (spec.task, repr(spec.args), repr(spec.kwargs))
        if call not in verdicts:
            try:
                signature.bind(*spec.args, **spec.kwargs)
                verdicts[call] = None
            except TypeError as exc:
                verdicts[call] = f"task {spec.task} cannot be called with these args and kwargs: {exc}"
        if verdicts[call] is not None:
            problems.append(Problem(name, "args", verdicts[call]))
        if not spec.lock_key:
            continue
        named = _named_parameters(signature)
        for key in spec.lock_key:
            if key not in named:
                known = ", ".join(sorted(named)) or "none"
                problems.append(Problem(name, "lock_key", f"task {spec.task} has no argument {key!r} "
                                                          f"(its named arguments: {known})"))
    return problems


def _message_size_problems(entries: Mapping[str, EntrySpec], *, max_bytes: int) -> list[Problem]:
    """Arguments whose JSON alone is over the size a worker accepts: every run would be rejected
    as poison (``tasks.poison``), so check refuses the entry instead."""
    problems = []
    for name, spec in entries.items():
        size = len(json.dumps([spec.args, spec.kwargs], default=str).encode())
        if size > max_bytes:
            problems.append(Problem(name, "args", f"args and kwargs are {size} bytes as JSON, over the "
                                                  f"{max_bytes} bytes a worker accepts (BEATKEEPER_MAX_MESSAGE_BYTES)"))
    return problems


def _named_parameters(signature: inspect.Signature) -> set[str]:
    """The argument names a lock key can use (``*args``/``**kwargs`` cannot)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in signature.parameters.values() if p.kind in named}


def _code_and_settings_problems(app) -> list[Problem]:
    """What the task code and the Celery settings rule out before any entry is read."""
    max_lock_ttl_s = float(app.conf.max_lock_ttl_s)
    problems = [Problem(None, f"task {name}", line)
                for name in sorted(app.tasks) for line in _declaration_problems(app.tasks[name], max_lock_ttl_s)]
    problems += [Problem(None, f"self-check {f.check}", f.message)
                 for f in check_beat_timing(lock_timeout_s=float(app.conf.redbeat_lock_timeout),
                                            loop_interval_s=float(app.conf.beat_max_loop_interval)) if f.fatal]
    return problems


def _declaration_problems(task, max_lock_ttl_s: float) -> list[str]:
    """The task's declared policy, checked as the worker checks it (one line each)."""
    try:
        error = policy_problem(task.name, declared_fields(task), max_lock_ttl_s=max_lock_ttl_s)
    except PolicyError as exc:
        error = exc
    return [] if error is None else [f"{error.field}={error.value!r}: {error.problem}"]

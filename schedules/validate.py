"""Schedule validation: raw mapping -> validated entries, or every problem at once.

One pass over all entries collects every problem (one line each, see
``schedules.errors.Problem``) before anything is refused; warnings (an ``at`` in the past,
a fixed-time cron moved by DST) are returned with the valid schedule, never raised.
``now`` is always a parameter: nothing here reads a clock.
"""
from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from schedules import guards
from schedules.cron import CronTrigger, RepeatPolicy
from schedules.dst import dst_effects
from schedules.entry import KEYS, KIND_KEYS, DstPolicy, EntrySpec, ScheduleKind, convert_keys, show
from schedules.errors import Problem, ScheduleConfigError
from schedules.fingerprint import canonical_config
from schedules.interval import IntervalTrigger
from schedules.killswitch import DISABLE_LIST_VARIABLE, switch_variable
from schedules.oneoff import AtTrigger
from schedules.settings import ScheduleSettings
from schedules.trigger import US_PER_S, Trigger, require_aware, to_epoch_us
from schedules.windows import WindowsTrigger
from schedules.zones import transitions_s

#: An entry that cannot fire within this long after ``now`` is refused as a mistake.
NEVER_FIRES_HORIZON = timedelta(days=8 * 365 + 2)  # 8 years, leap days included
#: How far ahead DST changes that move a fixed-time run are reported as warnings.
DST_WARNING_HORIZON = timedelta(days=366)


@dataclass(frozen=True)
class ValidatedSchedule:
    """Every entry of a valid schedule (disabled ones included) and the warnings found."""

    entries: dict[str, EntrySpec]
    warnings: list[Problem] = field(default_factory=list)


def validate_schedule(
    raw: Mapping[Any, Any],
    *,
    settings: ScheduleSettings,
    registered_tasks: Collection[str] | None,
    now: datetime,
    limits: guards.DeploymentLimits | None = None,
    declared_budgets: Mapping[str, int] | None = None,
    judge_budget: bool = True,
) -> ValidatedSchedule:
    """Validate ``raw`` (entry name -> entry dict); raises ScheduleConfigError listing every problem.

    ``registered_tasks`` None skips the check that each task exists (no app at hand);
    ``limits`` None skips the checks against the lock TTL cap and the broker's visibility timeout;
    ``declared_budgets``: task -> the ``max_runs_per_hour`` its code declares;
    ``judge_budget`` False leaves the task budgets to the caller (a dynamic entry is judged with
    its task's other entries, ``tasks.dynamic_entries``).
    """
    require_aware(now, "now")
    if not isinstance(raw, Mapping):
        raise ScheduleConfigError([Problem(None, None, f"must be a mapping of entry name to entry, got {show(raw)}")])
    registered = None if registered_tasks is None else frozenset(registered_tasks)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    entries: dict[str, EntrySpec] = {}
    unsure_tasks: set[str] = set()
    timings = _TimingMemo()
    shared: dict = {}  # converted key values, shared by entries with equal raw values
    for name, body in raw.items():
        label = name if isinstance(name, str) else show(name)
        name_ok = isinstance(name, str) and bool(name.strip())
        if not isinstance(name, str):
            hint = "; YAML reads yes/no/on/off as booleans: quote the name" if isinstance(name, bool) else ""
            problems.append(Problem(label, "name", f"an entry name must be a string, got {type(name).__name__}{hint}"))
        elif not name_ok:
            problems.append(Problem(label, "name", "an entry name must not be empty or blank"))
        if not isinstance(body, Mapping):
            problems.append(Problem(label, None, f"expected a mapping of keys (task, every, ...), got {show(body)}"))
            continue
        spec, entry_problems, entry_warnings = _validate_entry(label, body, settings, registered, now, timings, shared)
        problems.extend(entry_problems)
        warnings.extend(entry_warnings)
        if spec is not None and name_ok:
            entries[name] = spec
        elif isinstance(body.get("task"), str):
            unsure_tasks.add(body["task"])
    # A task called by an invalid entry has unknown runs and budget: judge it once that entry is fixed.
    budgeted = {name: spec for name, spec in entries.items() if spec.task not in unsure_tasks}
    problems.extend(guards.own_rate_problems(entries))
    if judge_budget:
        problems.extend(guards.budget_problems(budgeted, settings=settings, declared=declared_budgets))
    if limits is not None:
        problems.extend(guards.limit_problems(entries, limits) + guards.settings_problems(limits))
    if problems:
        raise ScheduleConfigError(problems)
    return ValidatedSchedule(entries=entries, warnings=warnings + _idle_switch_warnings(raw, settings))


def _idle_switch_warnings(raw: Mapping[Any, Any], settings: ScheduleSettings) -> list[Problem]:
    """Kill switches that match no entry: a typo there would otherwise fail silently."""
    names = {name for name in raw if isinstance(name, str)}
    variables = {switch_variable(name) for name in names}
    found = [Problem(None, DISABLE_LIST_VARIABLE, f"'{name}' is not an entry of this schedule; it disables nothing")
             for name in sorted(settings.disabled_names - names)]
    found += [Problem(None, variable, "matches no entry of this schedule; it disables nothing")
              for variable in sorted(settings.switched_off_variables - variables)]
    return found


class _TimingMemo:
    """Equal schedules share one trigger and one verdict: a 10,000-entry schedule usually holds
    a few hundred distinct timings, and the guards walk a year of each."""

    def __init__(self) -> None:
        self._seen: dict[tuple, tuple[Trigger, list[Problem], list[Problem]]] = {}

    def judge(self, label: str, kind: ScheduleKind, values: Mapping[str, Any], timezone: str,
              settings: ScheduleSettings, now: datetime) -> tuple[Trigger, list[Problem], list[Problem]]:
        key = _timing_key(kind, values, timezone)
        if key not in self._seen:
            trigger = _build_trigger(kind, values, timezone)
            problems = _timing_problems("", kind, trigger, values, settings, now)
            self._seen[key] = (trigger, problems, [] if problems else _warnings("", kind, trigger, now))
        trigger, problems, warnings = self._seen[key]
        return trigger, [replace(p, entry=label) for p in problems], [replace(p, entry=label) for p in warnings]


def _timing_key(kind: ScheduleKind, values: Mapping[str, Any], timezone: str) -> tuple:
    dst = values.get("dst")
    if kind is ScheduleKind.EVERY:
        return kind, values["every"], values.get("phase", 0.0)
    if kind is ScheduleKind.WINDOWS:
        return kind, tuple(values["windows"]), timezone
    return kind, values[kind.value], timezone, dst


def _validate_entry(
    label: str, body: Mapping[Any, Any], settings: ScheduleSettings,
    registered: frozenset[str] | None, now: datetime, timings: _TimingMemo, shared: dict,
) -> tuple[EntrySpec | None, list[Problem], list[Problem]]:
    values, pairs = convert_keys(body, shared)
    problems = [Problem(label, where, message) for where, message in pairs]
    task = values.get("task")
    if registered is not None and task is not None and task not in registered:
        problems.append(Problem(label, "task", _unknown_task(task, registered)))
    kinds = [key for key in KIND_KEYS if key in body]
    if problems or len(kinds) != 1:
        return None, problems, []
    kind = KIND_KEYS[kinds[0]]
    timezone = values.get("timezone", settings.timezone)
    trigger, timing_problems, warnings = timings.judge(label, kind, values, timezone, settings, now)
    if timing_problems:
        return None, timing_problems, []
    attributes = {attribute: values[key] if key in values else _fresh(default)
                  for key, attribute, default in _SPEC_ATTRIBUTES}
    spec = EntrySpec(name=label, trigger=trigger, kind=kind, timezone=timezone,
                     config=canonical_config(values, timezone=timezone, kind=kind), **attributes)
    return spec, [], warnings


#: (entry key, EntrySpec attribute, default) of every key stored on the spec as is.
_SPEC_ATTRIBUTES = tuple((key, k.attribute, k.default) for key, k in KEYS.items() if k.attribute is not None)


def _fresh(value: Any) -> Any:
    # Defaults are shared objects: each spec gets its own list/dict.
    return type(value)(value) if type(value) in (list, dict) else value


def _build_trigger(kind: ScheduleKind, values: Mapping[str, Any], timezone: str) -> Trigger:
    dst = values.get("dst") or DstPolicy()
    if kind is ScheduleKind.EVERY:
        return IntervalTrigger(values["every"], phase_s=values.get("phase", 0.0))
    if kind is ScheduleKind.CRON:
        return CronTrigger(values["cron"], timezone=timezone, gap=dst.gap, repeat=dst.repeat)
    if kind is ScheduleKind.AT:
        return AtTrigger.from_local(values["at"], timezone=timezone)
    return WindowsTrigger(values["windows"], timezone=timezone)


def _timing_problems(
    label: str, kind: ScheduleKind, trigger: Trigger, values: Mapping[str, Any],
    settings: ScheduleSettings, now: datetime,
) -> list[Problem]:
    """What the fire times themselves rule out: never firing, an unsupported DST choice, firing too often."""
    if kind is ScheduleKind.AT:
        if trigger.at - now > NEVER_FIRES_HORIZON:
            return [Problem(label, "at", f"{trigger.at.isoformat()} is more than 8 years ahead")]
        dst = values.get("dst") or DstPolicy()
        # A one-off always resolves a local time by the fixed-time rule; other choices would be ignored.
        return [Problem(label, f"dst.{key}", f"an at entry always uses {allowed}, got {chosen.value}")
                for key, chosen, allowed in (("gap", dst.gap, "shift"), ("repeat", dst.repeat, "first"))
                if chosen is not None and chosen.value != allowed]
    if kind is ScheduleKind.CRON:
        following = trigger.next_fire_after(now)
        if following is None or following - now > NEVER_FIRES_HORIZON:
            return [Problem(label, "cron", f"'{trigger.expr.source}' never fires in the 8 years after "
                                           f"{now.date().isoformat()}")]
    problem = guards.min_interval_problem(label, kind, trigger, min_interval_s=settings.min_interval_s, now=now)
    return [] if problem is None else [problem]


def _warnings(label: str, kind: ScheduleKind, trigger: Trigger, now: datetime) -> list[Problem]:
    """An ``at`` that will never fire, and fixed-time runs DST moves or drops in the coming year."""
    if kind is ScheduleKind.AT:
        if trigger.at <= now:
            return [Problem(label, "at", f"{trigger.at.isoformat()} is in the past; it will never fire")]
        if trigger.resolution == "repeated":
            return [Problem(label, "at", f"{trigger.local_time.isoformat(sep=' ')} happens twice in "
                                         f"{trigger.timezone}; it fires at the first occurrence")]
        if trigger.resolution != "gap":
            return []
    # A wildcard cron (*/15) follows real time through DST by design: only fixed times surprise.
    elif kind is not ScheduleKind.CRON or trigger.expr.is_wildcard or not _dst_touches_cron(trigger, now):
        return []
    return [Problem(label, kind.value, f"{effect.detail}; see `beatkeeper plan`")
            for effect in dst_effects(trigger, now, now + DST_WARNING_HORIZON)
            if effect.effect != "unaffected"]


def _dst_touches_cron(trigger: CronTrigger, now: datetime) -> bool:
    """Whether a run time falls in a skipped (or, with repeat=both, repeated) span within the horizon.

    A cheap filter: most crons never meet a transition, and ``dst_effects`` enumerates fires.
    """
    now_s = to_epoch_us(now) // US_PER_S
    end_s = now_s + int(DST_WARNING_HORIZON.total_seconds())
    for at_s, before_s, after_s in transitions_s(trigger.timezone, now_s, end_s):
        if after_s > before_s and trigger.expr.has_wall_match(at_s + before_s, at_s + after_s):
            return True
        if (after_s < before_s and trigger.repeat is RepeatPolicy.BOTH
                and trigger.expr.has_wall_match(at_s + after_s, at_s + before_s)):
            return True
    return False


def _unknown_task(task: str, registered: frozenset[str]) -> str:
    close = difflib.get_close_matches(task, sorted(registered), n=1, cutoff=0.6)
    if close:
        return f"unknown task {task!r}; did you mean {close[0]!r}?"
    return f"unknown task {task!r} (not registered by any task module)"

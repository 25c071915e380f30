"""The plan of a validated schedule over a window: fires, DST effects and projected cost.

* Fires: every fire of each registered entry in ``[start, end)``, in UTC and in the
  entry's zone (the settings' zone for ``every`` entries, which have none of their own).
* DST: each offset change of each zone an entry uses, and what it does to each cron,
  windows or at entry of that zone (``schedules.dst.dst_effects``); also the zone's next
  changes (one of each kind, within a year) when they fall after the window, marked so.
* Cost: runs per hour/day/month (30 days) scaled from the fires counted in the window, or in
  one cycle of the entry's calendar when that is longer (``schedules.projection``),
  worker-hours from each entry's ``expected_runtime`` (1 s when it has none; the plan
  says which entries assumed it), priced at ``cost_per_worker_hour``.

Entries left out (``enabled: false`` or a kill switch) are listed with the reason and
neither fire nor cost.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
import itertools
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from schedules.cron import REPEAT_LOOKBACK_S, CronTrigger
from schedules.cronexpr import EPOCH_ORDINAL, CronExpr
from schedules.dst import DstEffect, dst_effects
from schedules.entry import ZONED_KINDS, EntrySpec
from schedules.interval import IntervalTrigger
from schedules.projection import projection_end
from schedules.trigger import US_PER_S, Trigger, require_aware, to_epoch_us
from schedules.validate import ValidatedSchedule
from schedules.windows import WindowsTrigger
from schedules.zones import Transition, offset_at_s, transitions, transitions_s, zone

#: USD per worker-hour: roughly one small cloud vCPU-hour (on-demand, 2025 prices).
DEFAULT_COST_PER_WORKER_HOUR = 0.05
CURRENCY = "USD"
#: Seconds of worker time assumed per run of an entry without ``expected_runtime``.
DEFAULT_EXPECTED_RUNTIME_S = 1.0
HOURS_PER_DAY = 24
DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class EntryPlan:
    """One entry over ``[start, end)``: how many times it fires, or why it is left out.

    Fires are generated on demand (:meth:`iter_fires`): a 10,000-entry schedule holds
    millions of them in a week, and the cost projection needs only their count.
    """

    name: str
    spec: EntrySpec
    start: datetime
    end: datetime
    fire_count: int
    left_out: str | None = None

    def iter_fires(self) -> Iterator[datetime]:
        """The fires in the window (UTC), ascending; none for an entry left out."""
        return iter(()) if self.left_out else self.spec.trigger.fires_between(self.start, self.end)

    @property
    def fires(self) -> list[datetime]:
        return list(self.iter_fires())


@dataclass(frozen=True)
class DstRow:
    """One offset change of one zone and its effect on each entry of that zone."""

    timezone: str
    transition: Transition
    effects: dict[str, DstEffect]  # entry name -> effect
    in_window: bool = True  # False: one of the zone's next changes, after the window's end


@dataclass(frozen=True)
class Cost:
    """Projected load of one entry (or of the total)."""

    fires_in_window: int
    runs_per_hour: float
    runs_per_day: float
    runs_per_month: float
    worker_hours_per_month: float
    cost_per_month: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Plan:
    """What a schedule will do in ``[start, end)``; :meth:`to_json` is the ``plan --json`` contract."""

    start: datetime
    end: datetime
    entries: dict[str, EntryPlan]
    dst: list[DstRow]
    costs: dict[str, Cost]  # registered entries only
    total: Cost
    cost_per_worker_hour: float

    @property
    def window_hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    def to_json(self, *, max_fires: int | None = None) -> dict[str, Any]:
        """JSON-able plan; ``max_fires`` lists at most that many fires per entry (``fire_count`` is always all)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "entries": {name: _entry_json(plan, max_fires) for name, plan in self.entries.items()},
            "dst": [_dst_json(row) for row in self.dst],
            "cost": {
                "currency": CURRENCY,
                "cost_per_worker_hour": self.cost_per_worker_hour,
                "window_hours": self.window_hours,
                "days_per_month": DAYS_PER_MONTH,
                "default_expected_runtime_s": DEFAULT_EXPECTED_RUNTIME_S,
                "assumed_runtime": sorted(n for n in self.costs if self.entries[n].spec.expected_runtime_s is None),
                "entries": {name: cost.to_json() for name, cost in self.costs.items()},
                "total": self.total.to_json(),
            },
        }


def build_plan(
    schedule: ValidatedSchedule | Mapping[str, EntrySpec],
    *,
    start: datetime,
    end: datetime,
    cost_per_worker_hour: float = DEFAULT_COST_PER_WORKER_HOUR,
    left_out: Mapping[str, str] | None = None,
) -> Plan:
    """The plan of ``schedule`` in ``[start, end)``; ``left_out`` maps entries not registered to why."""
    require_aware(start, "start")
    require_aware(end, "end")
    if end <= start:
        raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
    specs = schedule if isinstance(schedule, Mapping) else schedule.entries
    reasons = dict(left_out or {})
    entries: dict[str, EntryPlan] = {}
    counts: dict[Trigger, int] = {}  # many entries share a schedule ("0 3 * * *" in one zone): count it once
    for name, spec in specs.items():
        reason = reasons.get(name) or (None if spec.enabled else "enabled: false in the schedule")
        if reason is None and spec.trigger not in counts:
            counts[spec.trigger] = count_fires(spec.trigger, start, end)
        entries[name] = EntryPlan(name, spec, start, end, 0 if reason else counts[spec.trigger], reason)
    registered = {name: plan for name, plan in entries.items() if plan.left_out is None}
    rates: dict[Trigger, float] = {}  # runs per hour, over the window or one cycle of the calendar
    for plan in registered.values():
        trigger = plan.spec.trigger
        if trigger not in rates:
            until = projection_end(trigger, start, end)
            fires = counts[trigger] if until == end else count_fires(trigger, start, until)
            rates[trigger] = fires * 3600 / (until - start).total_seconds()
    costs = {name: _cost(plan.fire_count, rates[plan.spec.trigger], plan.spec.expected_runtime_s,
                         cost_per_worker_hour)
             for name, plan in registered.items()}
    return Plan(start, end, entries, _dst_rows(registered, start, end), costs, _sum(costs.values()),
                cost_per_worker_hour)


def count_fires(trigger: Trigger, start: datetime, end: datetime) -> int:
    """``len(list(trigger.fires_between(start, end)))`` without building a datetime per fire."""
    start_us, end_us = to_epoch_us(start), to_epoch_us(end)
    if isinstance(trigger, IntervalTrigger):
        return trigger.count_in_us(start_us, end_us)
    if isinstance(trigger, WindowsTrigger):
        return sum(trigger.grids[index].count_in_us(run_start, run_end)
                   for run_start, run_end, index in trigger.runs_us(start_us, end_us))
    if isinstance(trigger, CronTrigger):
        # Cron fires are whole seconds: fire >= start <=> fire >= ceil(start); likewise for end.
        first_s, limit_s = -(-start_us // US_PER_S), -(-end_us // US_PER_S)
        return sum(_count_cron(trigger, low, high, exact) for low, high, exact in _cron_pieces(trigger, first_s, limit_s))
    return sum(1 for _ in trigger.fires_between(start, end))


def _cron_pieces(trigger: CronTrigger, first_s: int, limit_s: int) -> Iterator[tuple[int, int, bool]]:
    """``[first_s, limit_s)`` cut into pieces ``(low, high, near_a_transition)``: a day either side
    of each offset change (and its repeat look-back) is searched fire by fire, the rest counted."""
    margin_s = 86400
    cursor = first_s
    for at_s, _, _ in transitions_s(trigger.timezone, first_s - REPEAT_LOOKBACK_S - margin_s, limit_s + margin_s):
        low, high = max(cursor, at_s - margin_s), min(limit_s, at_s + REPEAT_LOOKBACK_S + margin_s)
        if low > cursor:
            yield cursor, min(low, limit_s), False
        if high > low:
            yield low, high, True
        cursor = max(cursor, high)
    if cursor < limit_s:
        yield cursor, limit_s, False


def _count_cron(trigger: CronTrigger, first_s: int, limit_s: int, near_transition: bool) -> int:
    if not near_transition:
        # One offset throughout (and no repeat to look back on): fires are exactly the
        # wall-clock matches, counted a day at a time instead of found one by one.
        offset_s = offset_at_s(trigger.timezone, first_s)
        return _count_wall_matches(trigger.expr, first_s + offset_s, limit_s + offset_s)
    count = 0
    fire_s = trigger.next_fire_at_or_after_s(first_s, limit_s)
    while fire_s is not None:
        count += 1
        fire_s = trigger.next_fire_at_or_after_s(fire_s + 1, limit_s)
    return count


def _count_wall_matches(expr: CronExpr, low_s: int, high_s: int) -> int:
    """How many wall minutes in ``[low_s, high_s)`` (naive epoch seconds) match ``expr``."""
    seconds_of_day = sorted(h * 3600 + m * 60 for h in expr.hours for m in expr.minutes)
    count = 0
    for day in range(low_s // 86400, (high_s - 1) // 86400 + 1):
        if not expr.matches_day(date.fromordinal(day + EPOCH_ORDINAL)):
            continue
        day_start = day * 86400
        low, high = max(low_s - day_start, 0), min(high_s - day_start, 86400)
        count += bisect_left(seconds_of_day, high) - bisect_left(seconds_of_day, low)
    return count


def _cost(fires: int, per_hour: float, expected_runtime_s: float | None, price: float) -> Cost:
    per_month = per_hour * HOURS_PER_DAY * DAYS_PER_MONTH
    runtime_s = DEFAULT_EXPECTED_RUNTIME_S if expected_runtime_s is None else expected_runtime_s
    worker_hours = per_month * runtime_s / 3600
    return Cost(fires, per_hour, per_hour * HOURS_PER_DAY, per_month, worker_hours, worker_hours * price)


def _sum(costs: Any) -> Cost:
    costs = list(costs)
    return Cost(*(sum(getattr(c, f) for c in costs) for f in Cost.__dataclass_fields__))


#: How far after the window's start a zone's next offset changes are looked for.
NEXT_CHANGES_HORIZON = timedelta(days=400)


def _dst_rows(registered: Mapping[str, EntryPlan], start: datetime, end: datetime) -> list[DstRow]:
    by_zone: dict[str, list[EntryPlan]] = {}
    for plan in registered.values():
        if plan.spec.kind in ZONED_KINDS:
            by_zone.setdefault(plan.spec.timezone, []).append(plan)
    rows: list[DstRow] = []
    for name in sorted(by_zone):
        changes = transitions(name, start, end)
        if changes:
            rows += _rows_for(name, by_zone[name], changes, start, end, in_window=True)
        rows += [row for change in _next_changes(name, start, end)
                 for row in _rows_for(name, by_zone[name], [change], change.at - timedelta(days=2),
                                      change.at + timedelta(days=2), in_window=False)]
    rows.sort(key=lambda row: (row.transition.at, row.timezone))
    return rows


def _next_changes(name: str, start: datetime, end: datetime) -> list[Transition]:
    """The zone's next change of each kind (gap, repeat) from ``start``, those after ``end`` only."""
    firsts: dict[str, Transition] = {}
    for change in transitions(name, start, start + NEXT_CHANGES_HORIZON):
        firsts.setdefault(change.kind, change)
    return sorted((c for c in firsts.values() if c.at >= end), key=lambda c: c.at)


def _rows_for(name: str, plans: list[EntryPlan], changes: list[Transition], start: datetime, end: datetime,
              *, in_window: bool) -> list[DstRow]:
    effects_of: dict[Trigger, list[DstEffect]] = {}  # equal triggers have equal effects
    for plan in plans:
        if plan.spec.trigger not in effects_of:
            effects_of[plan.spec.trigger] = dst_effects(plan.spec.trigger, start, end)
    rows = []
    for change in changes:
        effects = {plan.name: next(e for e in effects_of[plan.spec.trigger] if e.transition == change)
                   for plan in plans}
        rows.append(DstRow(name, change, effects, in_window))
    return rows


def _entry_json(plan: EntryPlan, max_fires: int | None) -> dict[str, Any]:
    tz = zone(plan.spec.timezone)
    fires = list(itertools.islice(plan.iter_fires(), max_fires))
    return {
        "task": plan.spec.task,
        "kind": plan.spec.kind.value,
        "schedule": plan.spec.trigger.describe(),
        "timezone": plan.spec.timezone,
        "left_out": plan.left_out,
        "fire_count": plan.fire_count,
        "fires_truncated": len(fires) < plan.fire_count,
        "fires": [fire.astimezone(tz).isoformat() for fire in fires],
        "fires_utc": [fire.isoformat() for fire in fires],
    }


def _dst_json(row: DstRow) -> dict[str, Any]:
    tz = zone(row.timezone)
    change = row.transition
    return {
        "timezone": row.timezone,
        "in_window": row.in_window,
        "at_utc": change.at.isoformat(),
        "kind": change.kind,
        "offset_before_s": change.offset_before_s,
        "offset_after_s": change.offset_after_s,
        "effects": {
            entry: {"effect": effect.effect, "detail": effect.detail,
                    "fires": [fire.astimezone(tz).isoformat() for fire in effect.fires]}
            for entry, effect in row.effects.items()
        },
    }

"""What each DST transition does to one schedule entry, in words a person can check.

``dst_effects(trigger, start, end)`` gives one :class:`DstEffect` per offset change of the
trigger's zone in ``[start, end)``. The effect word is one of:

* ``shifted``     -- run times in a spring-forward gap fire once, at the end of the gap;
* ``skipped``     -- run times in a gap do not fire (gap=skip; or a window not in force);
* ``fires_twice`` -- run times in a fall-back repeat fire in both occurrences;
* ``unaffected``  -- the entry runs as on any other day (including a fixed-time entry
  whose run time is repeated: it fires at the first occurrence only, once, as usual).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from schedules.cron import CronTrigger, GapPolicy, RepeatPolicy
from schedules.cronexpr import EPOCH_ORDINAL
from schedules.oneoff import AtTrigger
from schedules.trigger import from_epoch_s, require_aware
from schedules.windows import WindowsTrigger
from schedules.zones import Transition, abbreviation_at_s, transitions, zone

EFFECTS = ("shifted", "fires_twice", "skipped", "unaffected")
_LISTED_TIMES = 4  # a detail names at most this many wall times before abbreviating


@dataclass(frozen=True)
class DstEffect:
    """How one transition changes one entry's fires on that local day."""

    transition: Transition
    timezone: str
    effect: str  # one of EFFECTS
    detail: str  # one line for humans
    fires: tuple[datetime, ...]  # the entry's actual fires on that local day (UTC)


def _hhmm(wall_s: int) -> str:
    return f"{wall_s // 3600 % 24:02d}:{wall_s // 60 % 60:02d}"


def _day_of(wall_s: int) -> date:
    return date.fromordinal(wall_s // 86400 + EPOCH_ORDINAL)


def _times(walls: list[int]) -> str:
    names = [_hhmm(w) for w in walls]
    if len(names) == 1:
        return names[0]
    if len(names) <= _LISTED_TIMES:
        return ", ".join(names[:-1]) + " and " + names[-1]
    return f"{', '.join(names[:2])}, ... and {names[-1]} ({len(names)} times)"


def _iso_z(epoch_s: int) -> str:
    return from_epoch_s(epoch_s).strftime("%Y-%m-%dT%H:%M:%SZ")


def _at_local(name: str, epoch_s: int, offset_s: int) -> str:
    return f"{_hhmm(epoch_s + offset_s)} {abbreviation_at_s(name, epoch_s)}"


def _fires_on_local_day(trigger, transition: Transition, day: date) -> tuple[datetime, ...]:
    tz = zone(trigger.timezone)
    around = transition.at
    fires = trigger.fires_between(around - timedelta(days=2), around + timedelta(days=2))
    # The fire at the end of a gap belongs to the transition's day even when the gap ends
    # on the next date (America/Santiago's midnight, Pacific/Apia's skipped day).
    return tuple(f for f in fires if f.astimezone(tz).date() == day or f == around)


def _cron_effect(trigger: CronTrigger, tr: Transition, day: date) -> tuple[str, str]:
    at_s, before, after = tr.at_s, tr.offset_before_s, tr.offset_after_s
    low, high = (at_s + before, at_s + after) if tr.kind == "gap" else (at_s + after, at_s + before)
    walls: list[int] = []
    wall = trigger.expr.next_wall_match_s(low, high)
    while wall is not None:
        walls.append(wall)
        wall = trigger.expr.next_wall_match_s(wall + 60, high)
    span = f"{_hhmm(low)}-{_hhmm(high)}"
    name = trigger.timezone
    if tr.kind == "gap":
        if not walls:
            return "unaffected", f"no run time falls in the skipped {span} on {day}"
        verb = "does not exist" if len(walls) == 1 else "do not exist"
        if trigger.gap is GapPolicy.SHIFT:
            when = f"{_at_local(name, at_s, after)} ({_iso_z(at_s)})"
            return "shifted", f"{_times(walls)} {verb} on {day}; fires once at {when}"
        return "skipped", f"{_times(walls)} {verb} on {day}; not run (gap=skip)"
    if not walls:
        return "unaffected", f"no run time falls in the repeated {span} on {day}"
    first_abbr = abbreviation_at_s(name, at_s - 1)
    if trigger.repeat is RepeatPolicy.FIRST:
        verb = "happens" if len(walls) == 1 else "happen"
        return "unaffected", f"{_times(walls)} {verb} twice on {day}; fires at {_times(walls)} {first_abbr} only"
    second_abbr = abbreviation_at_s(name, at_s)
    return "fires_twice", f"fires at {_times(walls)} in both repeated hours on {day} ({first_abbr} and {second_abbr})"


def _windows_effect(trigger: WindowsTrigger, tr: Transition, day: date) -> tuple[str, str]:
    at_s, before, after = tr.at_s, tr.offset_before_s, tr.offset_after_s
    low, high = (at_s + before, at_s + after) if tr.kind == "gap" else (at_s + after, at_s + before)
    default = len(trigger.windows) - 1
    # Only an hour-limited window notices: the default grid runs on in real time, but a
    # window limited to skipped (repeated) wall hours loses (gains) real time in force.
    affected = {trigger.window_index_at_wall_s(w) for w in range(low, high, 60)} - {default}
    span = f"{_hhmm(low)}-{_hhmm(high)}"
    if not affected:
        return "unaffected", f"only the default window covers {span} on {day}"
    names = ", ".join(sorted({trigger.windows[i].describe() for i in affected}))
    if tr.kind == "gap":
        return "skipped", f"{span} does not exist on {day}; no fires from {names} in it"
    return "fires_twice", f"{span} happens twice on {day}; {names} is in force in both"


def _at_effect(trigger: AtTrigger, tr: Transition, day: date) -> tuple[str, str]:
    if trigger.local_time is None:
        return "unaffected", f"fires at {_iso_z(trigger.at_us // 1_000_000)}, a fixed instant"
    wall_s = (trigger.local_time - datetime(1970, 1, 1)) // timedelta(seconds=1)
    at_s, before, after = tr.at_s, tr.offset_before_s, tr.offset_after_s
    wall_text = _hhmm(wall_s)
    if tr.kind == "gap" and at_s + before <= wall_s < at_s + after:
        when = f"{_at_local(trigger.timezone, at_s, after)} ({_iso_z(at_s)})"
        return "shifted", f"{wall_text} does not exist on {_day_of(wall_s)}; fires once at {when}"
    if tr.kind == "repeat" and at_s + after <= wall_s < at_s + before:
        abbr = abbreviation_at_s(trigger.timezone, at_s - 1)
        return "unaffected", f"{wall_text} happens twice on {_day_of(wall_s)}; fires at {wall_text} {abbr} only"
    return "unaffected", f"the one-off at {trigger.local_time.isoformat(sep=' ')} is not on {day}"


def dst_effects(trigger: CronTrigger | WindowsTrigger | AtTrigger, start: datetime, end: datetime) -> list[DstEffect]:
    """One DstEffect per transition of the trigger's zone in ``[start, end)``."""
    require_aware(start, "start")
    require_aware(end, "end")
    if not isinstance(trigger, (CronTrigger, WindowsTrigger, AtTrigger)):
        raise TypeError(f"dst_effects needs a CronTrigger, WindowsTrigger or AtTrigger, got {type(trigger).__name__}")
    effects: list[DstEffect] = []
    for tr in transitions(trigger.timezone, start, end):
        # The transition's day: the earlier of the two wall readings at the instant
        # (Santiago's day without 00:00 is the Sunday; its repeated 23:00 the Saturday).
        day = _day_of(tr.at_s + min(tr.offset_before_s, tr.offset_after_s))
        fires = _fires_on_local_day(trigger, tr, day)
        if isinstance(trigger, CronTrigger):
            effect, detail = _cron_effect(trigger, tr, day)
        elif isinstance(trigger, WindowsTrigger):
            effect, detail = _windows_effect(trigger, tr, day)
        else:
            effect, detail = _at_effect(trigger, tr, day)
        effects.append(DstEffect(tr, trigger.timezone, effect, detail, fires))
    return effects


"""A Celery schedule backed by a beatkeeper trigger, and its JSON form in redbeat.

Celery asks a schedule "is it due, and when should I ask again?"; both answers come
from ``trigger.next_fire_after`` — the same code ``beatkeeper plan`` lists fires with.
The trigger (zone, DST policy, grid phase included) survives redbeat's JSON round trip
through ``schedules.codec``, unlike a stock crontab whose zone redbeat drops.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from celery.schedules import BaseSchedule, schedstate
from redbeat.decoder import RedBeatJSONDecoder

from schedules.codec import trigger_from_dict, trigger_to_dict
from schedules.trigger import Trigger

TYPE_TAG = "beatkeeper_trigger"  # the trigger inside carries the one codec version (schedules.codec), checked on read
IDLE_RECHECK_S = 300.0  # seconds: how often to re-ask a trigger that fires no more


class TriggerSchedule(BaseSchedule):
    """Celery's schedule protocol on top of a :class:`schedules.trigger.Trigger`."""

    def __init__(self, trigger: Trigger, *, nowfun=None, app=None):
        super().__init__(nowfun=nowfun, app=app)
        self.trigger = trigger

    def now(self) -> datetime:
        return _utc((self.nowfun or self.app.now)())

    def next_fire_after(self, after: datetime) -> datetime | None:
        return self.trigger.next_fire_after(_utc(after))

    def remaining_estimate(self, last_run_at: datetime) -> timedelta | None:
        nxt = self.next_fire_after(last_run_at)
        return None if nxt is None else nxt - self.now()

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = self.now()
        nxt = self.next_fire_after(last_run_at)
        if nxt is None:
            return schedstate(False, IDLE_RECHECK_S)
        if nxt <= now:
            following = self.next_fire_after(now)
            return schedstate(True, IDLE_RECHECK_S if following is None else (following - now).total_seconds())
        return schedstate(False, (nxt - now).total_seconds())

    def __repr__(self) -> str:
        return f"<TriggerSchedule {self.trigger.describe()}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TriggerSchedule) and trigger_to_dict(self.trigger) == trigger_to_dict(other.trigger)

    def __reduce__(self):
        return self.__class__, (self.trigger,)


def schedule_to_json(schedule: TriggerSchedule) -> dict[str, Any]:
    """The JSON-able form of ``schedule`` in a stored definition; worked out once per trigger
    (triggers are immutable, and equal schedules share one)."""
    trigger = schedule.trigger
    found = _ENCODED.get(id(trigger))
    if found is None or found[0] is not trigger:
        if len(_ENCODED) >= _ENCODED_MAX:
            _ENCODED.clear()
        found = _ENCODED[id(trigger)] = (trigger, {"__type__": TYPE_TAG, "trigger": trigger_to_dict(trigger)})
    return found[1]


_ENCODED: dict[int, tuple[Trigger, dict[str, Any]]] = {}  # id(trigger) -> (trigger, its JSON form)
_ENCODED_MAX = 100_000  # triggers kept


class ScheduleJSONDecoder(RedBeatJSONDecoder):
    """redbeat's decoder, plus beatkeeper triggers."""

    def dict_to_object(self, d: dict):
        if d.get("__type__") == TYPE_TAG:
            return TriggerSchedule(trigger_from_dict(d["trigger"]))
        return super().dict_to_object(d)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:  # Celery's enable_utc app clock is UTC
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)

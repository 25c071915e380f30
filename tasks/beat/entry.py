"""A redbeat entry whose due instant is its trigger's next fire, in UTC.

Stored as redbeat stores entries (hash ``definition`` + ``meta``, sorted-set score), so
``redis-cli`` and redbeat's tooling still read it; ``meta.last_run_at`` is the last
*scheduled instant* handed to the broker, not the wall time of the publish.

Entries are written only by :func:`store_entries`, from the validated schedule (there is no
per-entry ``save``: an entry added behind beat's back is removed at its next start).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder
from redbeat.schedulers import RedBeatSchedulerEntry

from tasks.beat.trigger_schedule import ScheduleJSONDecoder, TriggerSchedule, schedule_to_json


#: Stored definition text -> decoded definition. A tick loads the same definitions again and
#: again, and a freshly saved one is known already; triggers are immutable values.
_DECODED: dict[str, dict] = {}
_DECODED_MAX = 100_000  # definitions kept


def _decoded(definition: str) -> dict:
    found = _DECODED.get(definition)
    if found is None:
        found = _remember(definition, json.loads(definition, cls=ScheduleJSONDecoder))
    return found


def _remember(definition: str, decoded: dict) -> dict:
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()
    _DECODED[definition] = decoded
    return decoded


class BeatkeeperEntry(RedBeatSchedulerEntry):

    @staticmethod
    def decode_definition(definition: str) -> dict:
        return dict(_decoded(definition))

    @classmethod
    def from_stored(cls, app, definition: str, meta: str | None) -> "BeatkeeperEntry":
        """An entry from its stored hash fields (no round trip)."""
        entry = cls(app=app, **cls.decode_definition(definition))
        entry.apply_meta(meta)
        return entry

    def apply_meta(self, meta: str | None) -> None:
        values = json.loads(meta, cls=RedBeatJSONDecoder) if meta else {}
        self.last_run_at = values.get("last_run_at")
        self.total_run_count = values.get("total_run_count", 0)

    @property
    def due_at(self) -> datetime | None:
        after = self.last_run_at or self.default_now()
        known = self.__dict__.get("_due_after")  # asked several times per dispatch: worked out once per instant
        if known is not None and known[0] == after:
            return known[1]
        due = self.schedule.next_fire_after(after)
        self._due_after = (after, due)
        return due

    @property
    def score(self) -> float:
        """The UTC unix time of the next fire (exact, sub-second); -1 when it fires no more."""
        due = self.due_at
        return -1 if due is None else due.timestamp()

    def record_fire(self, fire_at: datetime, pipe, *, dispatched: bool = True) -> "BeatkeeperEntry":
        """Record in ``pipe`` that ``fire_at`` was handed to the broker (or, not dispatched, only
        considered) and rescore by the next fire. The caller executes ``pipe`` — after the publish."""
        self.last_run_at = fire_at
        self.total_run_count += int(dispatched)
        meta = {"last_run_at": fire_at, "total_run_count": self.total_run_count}
        pipe.hset(self.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
        pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})
        return self


def store_entries(app, client, entries: Mapping[str, Mapping], now: datetime) -> None:
    """Store many entries (name -> task, schedule, args, kwargs, options) in two round trips.

    Each definition is replaced; an existing meta is kept (it is beat's record of the last
    instant dispatched). A new entry is considered up to ``now``: it first fires at its next
    instant after registration. The score is the next fire after the meta's instant. Equal
    triggers and equal metas are worked out once: at start-up this runs for every entry."""
    keys = [BeatkeeperEntry.generate_key(app, name) for name in entries]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, "meta")
        metas = pipe.execute()
    new_meta = json.dumps({"last_run_at": now, "total_run_count": 0}, cls=RedBeatJSONEncoder)
    last_runs: dict[str, datetime | None] = {}
    scores: dict[str, float] = {}
    with client.pipeline(transaction=False) as pipe:
        for (name, fields), key, meta in zip(entries.items(), keys, metas):
            pipe.hset(key, "definition", _encoded_definition(name, fields))
            if meta is None:
                meta = new_meta
                pipe.hsetnx(key, "meta", meta)  # NX: a beat that dispatched meanwhile wins
            if meta not in last_runs:
                last_runs[meta] = json.loads(meta, cls=RedBeatJSONDecoder).get("last_run_at")
            scores[key] = _score(fields["schedule"], last_runs[meta] or now)
        if scores:
            pipe.zadd(app.redbeat_conf.schedule_key, scores)
        pipe.execute()


def _encoded_definition(name: str, fields: Mapping) -> str:
    definition = {"name": name, "task": fields["task"], "args": fields.get("args") or [],
                  "kwargs": fields.get("kwargs") or {}, "options": fields.get("options") or {},
                  "schedule": fields["schedule"], "enabled": fields.get("enabled", True)}
    # The trigger's JSON is worked out once per trigger (ScheduleJSONDecoder reads it back).
    encoded = json.dumps({**definition, "schedule": schedule_to_json(definition["schedule"])})
    _remember(encoded, definition)
    return encoded


def _score(schedule: TriggerSchedule, after: datetime) -> float:
    due = schedule.next_fire_after(after)
    return -1 if due is None else due.timestamp()

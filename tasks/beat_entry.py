"""A redbeat entry whose due instant is its trigger's next fire, in UTC.

Stored as redbeat stores entries (hash ``definition`` + ``meta``, sorted-set score), so
``redis-cli`` and redbeat's tooling still read it; ``meta.last_run_at`` is the last
*scheduled instant* handed to the broker, not the wall time of the publish.
"""
from __future__ import annotations

import json
from datetime import datetime

from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder
from redbeat.schedulers import RedBeatSchedulerEntry, get_redis

from tasks.beat_schedule import ScheduleJSONDecoder, ScheduleJSONEncoder


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
        return self.schedule.next_fire_after(self.last_run_at or self.default_now())

    @property
    def score(self) -> float:
        """The UTC unix time of the next fire (exact, sub-second); -1 when it fires no more."""
        due = self.due_at
        return -1 if due is None else due.timestamp()

    def save(self, pipe=None) -> "BeatkeeperEntry":
        """Store definition, meta (only if absent: it is beat's record) and score; in ``pipe`` if given."""
        if pipe is None:
            with get_redis(self.app).pipeline() as own:
                self.save(own)
                own.execute()
            return self
        definition = {"name": self.name, "task": self.task, "args": self.args, "kwargs": self.kwargs,
                      "options": self.options, "schedule": self.schedule, "enabled": self.enabled}
        meta = {"last_run_at": self.last_run_at, "total_run_count": self.total_run_count}
        encoded = json.dumps(definition, cls=ScheduleJSONEncoder)
        _remember(encoded, definition)
        pipe.hset(self.key, "definition", encoded)
        pipe.hsetnx(self.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
        pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})
        return self

    def record_fire(self, fire_at: datetime, pipe, *, dispatched: bool = True) -> "BeatkeeperEntry":
        """Record in ``pipe`` that ``fire_at`` was handed to the broker (or, not dispatched, only
        considered) and rescore by the next fire. The caller executes ``pipe`` — after the publish."""
        self.last_run_at = fire_at
        self.total_run_count += int(dispatched)
        meta = {"last_run_at": fire_at, "total_run_count": self.total_run_count}
        pipe.hset(self.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
        pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})
        return self

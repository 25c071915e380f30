"""beatkeeper's beat: redbeat's HA Redis scheduler, overriding only what correctness needs.

- The schedule comes from validated config (``tasks.schedule_source``); a config that
  fails validation stops beat at start with the same one-line messages as ``beatkeeper check``.
- Kill-switched and removed entries are deleted from Redis at start: no ghost keeps firing.
- Each entry is scored in redbeat's sorted set by the UTC instant of its next fire
  (``trigger.next_fire_after``), never by wall-clock arithmetic; ``last_run_at`` holds the
  last *scheduled instant* dispatched, so an instant that fired never fires again, across
  restarts.
- Every dispatch carries the entry name and its scheduled instant in message headers.
- The clock is ``app.now`` (tests inject one there).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime

from redbeat.decoder import RedBeatJSONEncoder
from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry, get_redis

from monitoring.events import record_event
from schedules.entry import EntrySpec
from schedules.errors import BeatkeeperScheduleError, ScheduleConfigError
from schedules.fingerprint import fingerprint
from schedules.killswitch import partition_enabled
from tasks import headers
from tasks.beat_schedule import ScheduleJSONDecoder, ScheduleJSONEncoder, TriggerSchedule
from tasks.schedule_source import load_validated_schedule

logger = logging.getLogger("beatkeeper.beat")

FINGERPRINT_KEY = "beatkeeper:schedule:fingerprint"
MISSED_SCAN_LIMIT = 100_000  # fires walked at most when looking for the latest missed instant


class BeatkeeperEntry(RedBeatSchedulerEntry):
    """A redbeat entry whose due instant comes from its trigger, in UTC."""

    @staticmethod
    def decode_definition(definition: str) -> dict:
        return json.loads(definition, cls=ScheduleJSONDecoder)

    @property
    def due_at(self) -> datetime | None:
        return self.schedule.next_fire_after(self.last_run_at or self.default_now())

    def save(self) -> "BeatkeeperEntry":
        definition = {"name": self.name, "task": self.task, "args": self.args, "kwargs": self.kwargs,
                      "options": self.options, "schedule": self.schedule, "enabled": self.enabled}
        meta = {"last_run_at": self.last_run_at}
        with get_redis(self.app).pipeline() as pipe:
            pipe.hset(self.key, "definition", json.dumps(definition, cls=ScheduleJSONEncoder))
            pipe.hsetnx(self.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
            pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})
            pipe.execute()
        return self

    def record_fire(self, fire_at: datetime) -> "BeatkeeperEntry":
        """Record that ``fire_at`` was handed to the broker; rescore by the next fire."""
        self.last_run_at = fire_at
        self.total_run_count += 1
        meta = {"last_run_at": fire_at, "total_run_count": self.total_run_count}
        with get_redis(self.app).pipeline() as pipe:
            pipe.hset(self.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
            pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})
            pipe.execute()
        return self


class BeatkeeperScheduler(RedBeatScheduler):
    Entry = BeatkeeperEntry

    def setup_schedule(self) -> None:
        kept = self._registered_entries()
        self.app.redbeat_conf.schedule = {name: self._celery_entry(spec) for name, spec in kept.items()}
        super().setup_schedule()
        self._remove_ghosts(set(kept))
        self._record_fingerprint(kept)

    # -- start-up --------------------------------------------------------------
    def _registered_entries(self) -> dict[str, EntrySpec]:
        try:
            validated = load_validated_schedule(self.app, now=self.app.now())
        except ScheduleConfigError as exc:
            _exit_with([str(p) for p in exc.problems])
        except BeatkeeperScheduleError as exc:
            _exit_with([str(exc)])
        for warning in validated.warnings:
            logger.warning("beat: %s", warning)
        kept, left_out = partition_enabled(validated, os.environ)
        for name, reason in sorted(left_out.items()):
            logger.warning("beat: entry '%s' left out: %s", name, reason)
        logger.info("beat: registering %d entries: %s", len(kept), ", ".join(sorted(kept)) or "none")
        return kept

    def _celery_entry(self, spec: EntrySpec) -> dict:
        options = {"headers": {}}
        if spec.queue:
            options["queue"] = spec.queue
        if spec.expires_s:
            options["expires"] = spec.expires_s
        return {"task": spec.task, "schedule": TriggerSchedule(spec.trigger, app=self.app),
                "args": list(spec.args), "kwargs": dict(spec.kwargs), "options": options}

    def _remove_ghosts(self, names: set[str]) -> None:
        """Delete every redbeat entry that is not in the registered schedule."""
        client = get_redis(self.app)
        wanted = {self.Entry.generate_key(self.app, name) for name in names}
        for key in set(client.zrange(self.app.redbeat_conf.schedule_key, 0, -1)) - wanted:
            logger.warning("beat: removing '%s' from redbeat: not in the registered schedule", key)
            with client.pipeline() as pipe:
                pipe.zrem(self.app.redbeat_conf.schedule_key, key)
                pipe.delete(key)
                pipe.execute()

    def _record_fingerprint(self, kept: dict[str, EntrySpec]) -> None:
        client = get_redis(self.app)
        current = fingerprint(kept)
        previous = client.getset(FINGERPRINT_KEY, current)
        logger.info("beat: schedule fingerprint %s", current)
        if previous and previous != current:
            logger.warning("beat: schedule changed since the last start (%s -> %s)", previous, current)
            record_event(client, "schedule_changed", "schedule", previous=previous, current=current,
                         entries=sorted(kept))

    # -- ticking ---------------------------------------------------------------
    def maybe_due(self, entry: BeatkeeperEntry, producer=None, **kwargs) -> float | None:
        """Dispatch ``entry`` if its next instant has come; return seconds until it is due again."""
        now = self.app.now()
        fire_at = entry.due_at
        if fire_at is None:
            return None
        if fire_at > now:
            return (fire_at - now).total_seconds()
        fire_at = self._latest_due(entry, fire_at, now)
        try:
            self._publish(entry, fire_at, producer)
        except Exception as exc:  # the broker refused it: the entry stays due and is retried next tick
            logger.error("beat: could not send %s for %s: %r; will retry", entry.name, fire_at.isoformat(), exc)
            return 1.0
        logger.info("beat: sent %s (%s) for %s", entry.name, entry.task, fire_at.isoformat())
        entry.record_fire(fire_at)
        nxt = entry.due_at
        return None if nxt is None else max(0.0, (nxt - now).total_seconds())

    def _latest_due(self, entry: BeatkeeperEntry, first_due: datetime, now: datetime) -> datetime:
        """The most recent instant at or before ``now``; older missed ones are recorded, not run."""
        latest, missed = first_due, []
        for _ in range(MISSED_SCAN_LIMIT):
            nxt = entry.schedule.next_fire_after(latest)
            if nxt is None or nxt > now:
                break
            missed.append(latest)
            latest = nxt
        if missed:
            logger.warning("beat: %s missed %d instant(s) from %s; running only %s", entry.name, len(missed),
                           missed[0].isoformat(), latest.isoformat())
            record_event(get_redis(self.app), "missed_runs", entry.name, count=len(missed),
                         first=missed[0].isoformat(), last=missed[-1].isoformat())
        return latest

    def _publish(self, entry: BeatkeeperEntry, fire_at: datetime, producer) -> None:
        options = dict(entry.options)
        options["headers"] = {**options.get("headers", {}), **headers.dispatch_headers(entry.name, fire_at)}
        task = self.app.tasks.get(entry.task)
        if task is not None:
            task.apply_async(entry.args, entry.kwargs, producer=producer, **options)
        else:
            self.app.send_task(entry.task, entry.args, entry.kwargs, producer=producer, **options)


def _exit_with(lines: list[str]) -> None:
    """Stop beat at start with one line per problem and a non-zero exit (no traceback)."""
    for line in lines:
        logger.error("beat: %s", line)
        print(line, file=sys.stderr)
    print("beat: refusing to start with an invalid schedule (see `beatkeeper check`)", file=sys.stderr)
    raise SystemExit(1)

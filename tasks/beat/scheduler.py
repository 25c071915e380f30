"""beatkeeper's beat: redbeat's HA Redis scheduler, overriding only what correctness needs.

- The schedule comes from validated config (``tasks.beat.schedule_source``); a config that
  fails validation stops beat at start with the same one-line messages as ``beatkeeper check``.
- Kill-switched and removed entries are deleted from Redis at start: no ghost keeps firing.
- Each entry is scored in redbeat's sorted set by the UTC instant of its next fire
  (``trigger.next_fire_after``), never by wall-clock arithmetic; ``last_run_at`` holds the
  last *scheduled instant* dispatched, so an instant that fired never fires again, across
  restarts.
- Every dispatch carries the entry name and its scheduled instant in message headers.
- Only the holder of the beat lock dispatches (``tasks.beat.lock``: acquire, fence, renew, retake,
  lost); a beat without it is a standby that tries to take it at each tick.
- Missed instants an entry catches up run one after another (``tasks.beat.catchup_gate``).
- The clock is ``app.now`` (tests inject one there).
"""
from __future__ import annotations

import gc
import logging
import os
from datetime import datetime

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redbeat.schedulers import REDBEAT_REDIS_KEY, RedBeatScheduler, get_redis

from monitoring.events import EventKind, record_event
from monitoring.namespace import namespaced
from schedules.backoff import retry_delay_s
from schedules.catchup import CatchupDecision, decide_catchup
from schedules.entry import CatchupPolicy, EntrySpec
from schedules.errors import BeatkeeperScheduleError, ScheduleConfigError
from schedules.fingerprint import fingerprint
from schedules.killswitch import partition_enabled
from schedules.settings import ScheduleSettings
from tasks.beat import batch_publish, catchup_gate, delivery_watch, dispatch, policy_publisher, selfchecks
from tasks.beat.due_read import DueReader
from tasks.beat.entry import BeatkeeperEntry, store_entries
from tasks.beat.lock import BeatLock, exit_on_lost_lock
from tasks.beat.selfchecks import refuse_to_start
from tasks.beat.schedule_source import load_validated_schedule
from tasks.beat.trigger_schedule import TriggerSchedule
from tasks.beat.dynamic import DynamicSpecs, dynamic_keys, expire_retired_policies, republish_policies
from tasks.dynamic.entries import NAMES_KEY as DYNAMIC_NAMES_KEY
from tasks.importers.ignored import warn_ignored_beat_schedule
from tasks.infra import broker
from tasks.infra.errors import wait_for_broker
from tasks.policy import publish_scheduled_tasks

logger = logging.getLogger("beatkeeper.beat")

FINGERPRINT_KEY = namespaced("beatkeeper:schedule:fingerprint")
ON_TIME_SLACK_S = 5.0  # seconds past the loop interval a due instant still counts as on time
PUBLISH_RETRY_S = 0.5  # seconds before a refused publish is first tried again (then doubling)
PUBLISH_RETRY_MAX_S = 5.0  # seconds: the longest wait between publish attempts
REDIS_RETRY_S = 1.0  # seconds before a tick that found Redis unreachable is tried again (then doubling)
REDIS_RETRY_MAX_S = 8.0  # seconds: the longest wait between ticks while Redis stays away
MISSED_LISTED = 50  # missed instants listed in one event (all are counted)
RECONCILE_S = 60.0  # seconds between full comparisons of redbeat's schedule with the config

class BeatkeeperScheduler(RedBeatScheduler):
    Entry = BeatkeeperEntry
    specs: dict[str, EntrySpec] = {}

    def __init__(self, app, *args, lazy: bool = False, **kwargs):
        self._publish_failures: dict[str, int] = {}
        self._next_sweep_ts = 0.0
        self._due_reader: DueReader | None = None
        self._next_reconcile_ts = 0.0
        self._beat_lock: BeatLock | None = None
        self._redis_failures = 0
        self._catchup = catchup_gate.CatchupSequence()
        self._dynamic = DynamicSpecs()  # tasks.dynamic.entries: read when due, never all at once
        # redbeat sets lock_timeout after Celery's __init__ ran setup_schedule; set up last,
        # so the start-up checks see the real values.
        super().__init__(app, *args, lazy=True, **kwargs)
        if not lazy:
            wait_for_broker(app, who="beat", log=logger)  # Redis down at start: one line per retry
            self.setup_schedule()

    def setup_schedule(self) -> None:
        # Start-up builds a few objects per entry, all kept for beat's life: collecting garbage
        # meanwhile only rescans them (a third of start-up at 10,000 entries). Afterwards they
        # are frozen out of every later collection, which keeps ticks free of long GC pauses.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._setup_schedule()
        finally:
            if collecting:
                gc.enable()
            gc.freeze()

    def _setup_schedule(self) -> None:
        kept = self._registered_entries()
        self._self_check(kept)
        self.specs = kept
        warn_ignored_beat_schedule(self.app.conf.beat_schedule, logger)  # tasks.importers.ignored
        self.app.redbeat_conf.schedule = {name: self._celery_entry(spec) for name, spec in kept.items()}
        super().setup_schedule()
        self._remove_ghosts(set(kept))
        self._record_fingerprint(kept)
        self._due_reader = DueReader(self._redis())
        self._next_reconcile_ts = self.app.now().timestamp() + RECONCILE_S
        policy_publisher.publish(get_redis(self.app), kept, tasks=self.app.tasks,
                             default_budget=ScheduleSettings.from_env(os.environ).max_runs_per_hour)
        publish_scheduled_tasks(get_redis(self.app), (spec.task for spec in kept.values()))  # read by the workers' guard (tasks.guard.scope)
        republish_policies(get_redis(self.app), set(self.specs))  # dynamic entries' policies, after the file's

    # -- start-up --------------------------------------------------------------
    def _registered_entries(self) -> dict[str, EntrySpec]:
        try:
            validated = load_validated_schedule(self.app, now=self.app.now())
        except ScheduleConfigError as exc:
            refuse_to_start([str(p) for p in exc.problems])
        except BeatkeeperScheduleError as exc:
            refuse_to_start([str(exc)])
        for warning in validated.warnings:
            logger.warning("beat: %s", warning)
        kept, left_out = partition_enabled(validated, os.environ)
        for name, reason in sorted(left_out.items()):
            logger.warning("beat: entry '%s' left out: %s", name, reason)
        logger.info("beat: registering %d entries: %s", len(kept), ", ".join(sorted(kept)) or "none")
        return kept

    def _self_check(self, kept: dict[str, EntrySpec]) -> None:
        findings = selfchecks.check_eviction_policy(get_redis(self.app), selfchecks.eviction_check_mode(os.environ))
        findings += selfchecks.check_beat_timing(lock_timeout_s=self.lock_timeout, loop_interval_s=self.max_interval)
        findings += broker.consumer_timeout_findings(self.app)  # RabbitMQ against late acks
        # lock_ttl/expires against the cap and the visibility timeout: refused by validation
        # (schedules.guards), the same lines `beatkeeper check` prints.
        if not selfchecks.report(findings, logger):
            refuse_to_start([f"self-check {f.check}: {f.message}" for f in findings if f.fatal],
                       why="failed start-up self-checks")

    def _celery_entry(self, spec: EntrySpec) -> dict:
        options = policy_publisher.message_options(spec)
        return {"task": spec.task, "schedule": TriggerSchedule(spec.trigger, app=self.app),
                "args": list(spec.args), "kwargs": dict(spec.kwargs), "options": options}

    def update_from_dict(self, dict_: dict) -> None:
        """Store every entry (definition refreshed, beat's meta kept) in two round trips in all."""
        store_entries(self.app, get_redis(self.app), dict_, self.app.now())

    def _remove_ghosts(self, names: set[str]) -> None:
        """Delete every redbeat entry that is not in the registered schedule."""
        client = get_redis(self.app)
        wanted = {self.Entry.generate_key(self.app, name) for name in names}
        wanted |= dynamic_keys(client, self.app.redbeat_conf.key_prefix)
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
            record_event(client, EventKind.SCHEDULE_CHANGED, "schedule", previous=previous, current=current,
                         entries=sorted(kept))

    # -- ticking ---------------------------------------------------------------
    def tick(self, min=min, **kwargs) -> float:
        """One pass: renew the beat lock, dispatch what is due, return seconds to sleep.

        Redis being away is survived: the tick is retried shortly, with nothing recorded
        as sent that was not (publish-then-record)."""
        try:
            wait_s = self._tick()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self._redis_failures += 1
            # never sparser than the loop interval: the lock timeout is sized for renewals that often
            retry_s = min(retry_delay_s(self._redis_failures - 1, base_s=REDIS_RETRY_S, max_s=REDIS_RETRY_MAX_S),
                          max(REDIS_RETRY_S, self.max_interval))
            logger.warning("beat: Redis unavailable (%s); retrying in %.0fs", exc, retry_s)
            return retry_s
        self._redis_failures = 0
        return wait_s

    def _redis(self):
        """redbeat's client of the app: its ``get_redis`` re-reads the configuration on every call,
        a third of an idle tick's time."""
        return getattr(self.app, REDBEAT_REDIS_KEY, None) or get_redis(self.app)

    def _tick(self) -> float:
        client = self._redis()
        now = self.app.now()
        now_ts = now.timestamp()
        lock = self._leading(client)
        if lock is False:
            return self.max_interval  # a standby: try again at the next tick
        if self._due_reader is None:
            self._due_reader = DueReader(client)
        read = self._due_reader.read(client, schedule_key=self.app.redbeat_conf.schedule_key, now_ts=now_ts,
                                     lock_key=lock.name if lock else None, token=lock.token if lock else None,
                                     lock_ttl_ms=int(self.lock_timeout * 1000), dynamic_key=DYNAMIC_NAMES_KEY)
        if read.renewed is False and not lock.renewal_failed(self._clock_ts):
            self.on_lock_lost(LockNotOwnedError("the beat lock is no longer ours", lock_name=lock.name))
        # A changed count is noticed at once; an entry swapped for a stranger at the next full look.
        if read.stored != len(self.specs) + read.dynamic or now_ts >= self._next_reconcile_ts:
            self._next_reconcile_ts = now_ts + RECONCILE_S
            self._reconcile(client, counted=read.stored == len(self.specs) + read.dynamic)
            expire_retired_policies(client, now_ts)  # dispatched one-offs' policies, a day on
        waits = [self.max_interval]
        if read.next_score is not None:
            waits.append(read.next_score - now_ts)
        entries = self._entries_of(client, read.due)
        # A batch's publishes go out in one round trip, then its records in one (tasks.beat.batch_publish).
        for batch in batch_publish.chunks(entries):
            try:
                with batch_publish.publish_then_record(self.producer, client) as records:
                    for entry in batch:
                        wait = self.maybe_due(entry, producer=self.producer, now=now, records=records)
                        if wait is not None:
                            waits.append(wait)
            except batch_publish.BatchNotSent as exc:  # nothing recorded: the entries stay due
                waits.append(self._publish_failed(batch_publish.BATCH, now, exc))
            else:
                self._publish_failures.pop(batch_publish.BATCH, None)
        if now_ts >= self._next_sweep_ts:
            self._next_sweep_ts = now_ts + delivery_watch.SWEEP_S
            self._resend_lost(client, now)
        # The waits were measured from the start of this tick: what the tick took is already spent.
        elapsed_s = (self.app.now() - now).total_seconds()
        return max(0.0, min(waits) - elapsed_s)

    def _reconcile(self, client, *, counted: bool = False) -> None:
        """Someone changed redbeat's schedule behind beat's back: restore and report missing entries.

        ``counted``: the schedule holds as many entries as the file and the dynamic ones. Then, with
        every file entry in place, no stranger can hide but in place of a dynamic key gone missing,
        and a stranger never fires (``_entries_of`` removes it once due): the full look, a read of
        the whole schedule (100,000 dynamic entries: seconds), is not needed."""
        if counted:
            keys = [self.Entry.generate_key(self.app, name) for name in self.specs]
            if not keys or None not in client.zmscore(self.app.redbeat_conf.schedule_key, keys):
                return
        stored = set(client.zrange(self.app.redbeat_conf.schedule_key, 0, -1))
        missing = {name: self.app.redbeat_conf.schedule[name] for name in self.specs
                   if self.Entry.generate_key(self.app, name) not in stored}
        if missing:
            logger.error("beat: entries %s vanished from redbeat; restoring them", sorted(missing))
            self.update_from_dict(missing)
            for name in missing:
                record_event(client, EventKind.SCHEDULE_ENTRY_RESTORED, name)
        self._remove_ghosts(set(self.specs))

    def _leading(self, client) -> BeatLock | None | bool:
        """The beat lock this beat holds (to renew in the tick's read); None when beat runs without a
        lock (no lock key); False for a standby, which tried to take it, without waiting, and failed."""
        if not self.lock_key:
            return None
        if self._beat_lock is None:
            self._beat_lock = BeatLock(client, self.lock_key, timeout_s=self.lock_timeout)
        lock = self._beat_lock
        if not lock.held:
            if not lock.try_acquire(self._clock_ts):
                logger.debug("beat: standing by: another beat holds %s", self.lock_key)
                return False
            self.lock = lock.lock  # what redbeat's close() releases
        return lock

    def _clock_ts(self) -> float:
        return self.app.now().timestamp()

    def close(self) -> None:
        if self._beat_lock is not None:
            self._beat_lock.release()
        self.lock = None
        super().close()

    def on_lock_lost(self, exc: Exception) -> None:
        """Another beat owns the lock now: exit at once (``tasks.beat.lock``)."""
        exit_on_lost_lock(exc)

    def _load_entries(self, client, keys: list[str]) -> list[BeatkeeperEntry]:
        """Load many entries in one round trip."""
        if not keys:
            return []
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "definition", "meta")
            rows = pipe.execute()
        return self._entries_of(client, [(key, definition, meta) for key, (definition, meta) in zip(keys, rows)])

    def _entries_of(self, client, stored: list[tuple[str, str | None, str | None]]) -> list[BeatkeeperEntry]:
        """Entries from their stored (key, definition, meta). A key that is not a registered entry
        (written behind beat's back, say by redbeat's own API) or has no definition leaves the
        schedule instead of reaching ``maybe_due``."""
        prefix = self.app.redbeat_conf.key_prefix
        entries = []
        names = [key[len(prefix):] for key, _, _ in stored if key.startswith(prefix)]
        dynamic = self._dynamic.load(client, [n for n in names if n not in self.specs], self.app.now())
        for key, definition, meta in stored:
            registered = key.startswith(prefix) and (key[len(prefix):] in self.specs or key[len(prefix):] in dynamic)
            if not registered or not definition:
                why = "has no definition" if registered else "is not in the registered schedule"
                logger.warning("beat: %s %s; removing it", key, why)
                with client.pipeline() as pipe:
                    pipe.zrem(self.app.redbeat_conf.schedule_key, key)
                    if not registered:
                        pipe.delete(key)
                    pipe.execute()
                continue
            entries.append(self.Entry.from_stored(self.app, definition, meta))
        return entries

    def maybe_due(self, entry: BeatkeeperEntry, producer=None, now: datetime | None = None,
                  records=None, **kwargs) -> float | None:
        """Dispatch what is due of ``entry`` (catch-up policy applied); seconds until it is due again.

        What was sent is recorded in the ``records`` pipeline, which the caller executes."""
        if records is None:
            with self._redis().pipeline(transaction=False) as own:
                try:
                    return self.maybe_due(entry, producer, now, records=own)
                finally:
                    own.execute()
        now = now or self.app.now()
        first_due = entry.due_at
        if first_due is None:
            return None
        if first_due > now:
            return (first_due - now).total_seconds()
        spec = self.specs.get(entry.name) or self._dynamic.spec(entry.name)
        decision = decide_catchup(
            entry.schedule.trigger, last=entry.last_run_at or now, now=now,
            policy=spec.catchup if spec else None, window_s=spec.catchup_window_s if spec else None,
            max_runs=spec.catchup_max if spec else None, on_time_s=self.max_interval + ON_TIME_SLACK_S)
        run, advance_to, catching_up = decision.run, decision.advance_to, False
        if spec is not None and spec.catchup is CatchupPolicy.ALL and run:
            chosen = self._catchup.to_send(self._redis(), entry=entry.name, run=run, previous=entry.last_run_at,
                                           now=now, on_time_s=self.max_interval + ON_TIME_SLACK_S)
            if chosen is None:
                return catchup_gate.POLL_S  # decided again once the previous run ended
            run, catching_up = chosen
            if catching_up:  # what follows the oldest is decided again after its run
                advance_to = run[0]
        for fire_at in run:
            try:
                sent = self._publish(entry, fire_at, producer)
            except Exception as exc:  # the broker refused it: the entry stays due, retried with backoff
                return self._publish_failed(entry.name, fire_at, exc)
            self._publish_failures.pop(entry.name, None)
            logger.info("beat: sent %s (%s) for %s (fence %s)", entry.name, entry.task, fire_at.isoformat(),
                        self._beat_lock.fence if self._beat_lock else None)
            entry.record_fire(fire_at, records)
            if sent is not None:
                if broker.watches_deliveries(self.app):  # RabbitMQ: publisher confirms instead
                    delivery_watch.watch(records, sent)
                if catching_up:
                    self._catchup.record(entry.name, fire_at, sent.sent_at)
        self._record_missed(entry, decision)
        if advance_to is not None and advance_to != entry.last_run_at:
            entry.record_fire(advance_to, records, dispatched=False)
        nxt = entry.due_at
        if nxt is None and entry.name not in self.specs:  # a dynamic one-off is done: it leaves
            self._dynamic.remove_when_done(records, entry.name, key_prefix=self.app.redbeat_conf.key_prefix,
                                           schedule_key=self.app.redbeat_conf.schedule_key, now_ts=now.timestamp())
        return None if nxt is None else max(0.0, (nxt - now).total_seconds())

    def _publish_failed(self, name: str, fire_at: datetime, exc: Exception) -> float:
        failures = self._publish_failures[name] = self._publish_failures.get(name, 0) + 1
        retry_in_s = retry_delay_s(failures - 1, base_s=PUBLISH_RETRY_S, max_s=PUBLISH_RETRY_MAX_S)
        logger.error("beat: could not send %s for %s (attempt %d): %r; retrying in %.1fs", name,
                     fire_at.isoformat(), failures, exc, retry_in_s)
        return retry_in_s

    def _record_missed(self, entry: BeatkeeperEntry, decision: CatchupDecision) -> None:
        if not decision.missed:
            return
        logger.warning("beat: %s missed %d instant(s) from %s to %s (catch-up policy ran %d)", entry.name,
                       len(decision.missed), decision.missed[0].isoformat(), decision.missed[-1].isoformat(),
                       len(decision.run))
        record_event(self._redis(), EventKind.MISSED_RUNS, entry.name, count=len(decision.missed),
                     first=decision.missed[0].isoformat(), last=decision.missed[-1].isoformat(),
                     instants=[t.isoformat() for t in decision.missed[-MISSED_LISTED:]], capped=decision.capped)

    def _resend_lost(self, client, now: datetime) -> None:
        """Send again what the broker lost after accepting it (``tasks.beat.dispatch``)."""
        dispatch.resend_lost(self, client, now)

    def _publish(self, entry: BeatkeeperEntry, fire_at: datetime, producer,
                 expires_at: float | None = None) -> delivery_watch.Dispatch | None:
        """Send one instant of ``entry`` (``tasks.beat.dispatch``)."""
        fence = self._beat_lock.fence if self._beat_lock is not None else None
        return dispatch.send(self.app, entry, fire_at, producer, fence=fence, expires_at=expires_at)


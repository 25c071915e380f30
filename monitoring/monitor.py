"""The monitor: its own process, so that it outlives beat; every few seconds it evaluates every
rule, sends what changed, and keeps the answers ``/healthz`` and ``/readyz`` give.

One evaluation is one call, ``Monitor.evaluate(now)``, with ``now`` from the injected clock:
tests drive it directly; ``Monitor.run`` calls it every ``interval_s``. An evaluation never
raises: a rule that fails is logged and alerts as ``monitor_rule_failed``, a schedule that
cannot be loaded as ``schedule_unloadable`` (the last good one is kept), a sink that keeps
failing as ``alert_sink_failing``.

| variable                       | default | meaning                                         |
|--------------------------------|---------|-------------------------------------------------|
| BEATKEEPER_MONITOR_INTERVAL    | 5s      | between evaluations                             |
| BEATKEEPER_MONITOR_HOST        | 127.0.0.1 | address of /metrics, /healthz, /readyz (0.0.0.0 in a container) |
| BEATKEEPER_MONITOR_PORT        | 8736    | their port                                      |
| BEATKEEPER_ALERT_REPEAT        | 1h      | reminder period of an alert that keeps firing   |
| BEATKEEPER_ALERT_SINK_ATTEMPTS | 8       | tries per notification and sink                 |
| BEATKEEPER_INSPECT_TIMEOUT     | 1s      | how long workers get to say which queues they consume |
| BEATKEEPER_SCHEDULE_REFRESH    | 60s     | how often the schedule is validated again       |

Rule thresholds: ``monitoring.rules.settings``; sinks: ``monitoring.sinks``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis

from monitoring.alerts import DEFAULT_REPEAT_S, Alert, AlertManager, AlertStore, Notification, Severity
from monitoring.heartbeats import HEARTBEATS_KEY
from monitoring.history import HistoryStore
from monitoring.leadership import Leadership
from monitoring.namespace import namespaced
from monitoring.rules import default_rules
from monitoring.rules.base import (NEEDS_HISTORY, NEEDS_REDIS, NEEDS_WORKERS, PlatformKeys, Rule, RuleContext,
                                   WorkerProbe)
from monitoring.rules.infrastructure import QUEUE_RULE
from monitoring.rules.settings import RuleSettings, int_from_env, seconds_from_env
from monitoring.sinks import Dispatcher, LogSink
from monitoring.web.alert_log import stage_resolved
from schedules.entry import EntrySpec

log = logging.getLogger("beatkeeper.monitor")

#: Outside 9100-9999, the range of the Prometheus wiki's "default port allocations" (full since
#: 2023; 9808 there is celery-exporter's), and no common service's: beatkeeper runs beside them.
DEFAULT_PORT = 8736
FIRST_START_KEY = namespaced("beatkeeper:monitor:first_start")
RULE_FAILED = "monitor_rule_failed"
SCHEDULE_UNLOADABLE = "schedule_unloadable"
SINK_FAILING = "alert_sink_failing"
META_RULES = (RULE_FAILED, SCHEDULE_UNLOADABLE, SINK_FAILING)


@dataclass(frozen=True)
class MonitorSettings:
    interval_s: float = 5.0
    host: str = "127.0.0.1"  # only this machine, unless told otherwise
    port: int = DEFAULT_PORT
    repeat_s: float = DEFAULT_REPEAT_S
    sink_attempts: int = 8
    inspect_timeout_s: float = 1.0
    schedule_refresh_s: float = 60.0
    rules: RuleSettings = field(default_factory=RuleSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> MonitorSettings:
        """Every setting from ``environ``; raises MonitorSettingError on one it cannot use."""
        return cls(interval_s=seconds_from_env(environ, "BEATKEEPER_MONITOR_INTERVAL", 5.0),
                   host=(environ.get("BEATKEEPER_MONITOR_HOST") or "127.0.0.1").strip(),
                   port=int_from_env(environ, "BEATKEEPER_MONITOR_PORT", DEFAULT_PORT),
                   repeat_s=seconds_from_env(environ, "BEATKEEPER_ALERT_REPEAT", DEFAULT_REPEAT_S),
                   sink_attempts=int_from_env(environ, "BEATKEEPER_ALERT_SINK_ATTEMPTS", 8),
                   inspect_timeout_s=seconds_from_env(environ, "BEATKEEPER_INSPECT_TIMEOUT", 1.0),
                   schedule_refresh_s=seconds_from_env(environ, "BEATKEEPER_SCHEDULE_REFRESH", 60.0),
                   rules=RuleSettings.from_env(environ))


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found and said."""

    at: float
    notifications: list[Notification]
    firing: list[Alert]  # every alert firing once it ended
    skipped: dict[str, str]  # rule -> why it was not asked (its alerts unchanged)
    errors: dict[str, str]  # rule -> the error it raised
    queues: dict[str, dict[str, Any]] | None = None  # queue -> entries, consumers, pending
    redis_error: str | None = None


class Monitor:
    """Evaluates the rules against Redis, the history and the validated schedule."""

    def __init__(self, *, client: redis.Redis, load_specs: Callable[[datetime], Mapping[str, EntrySpec]],
                 settings: MonitorSettings | None = None, history: HistoryStore | None = None,
                 workers: WorkerProbe | None = None, keys: PlatformKeys | None = None,
                 queue_of: Callable[[EntrySpec], str] | None = None, dispatcher: Dispatcher | None = None,
                 rules: Sequence[Rule] | None = None, ping_client: redis.Redis | None = None,
                 redis_label: str = "Redis", broker: Any = None):
        self.client = client
        self.broker = broker  # monitoring.broker_queues: where queue depth is read (None: this Redis)
        # Asked first in each evaluation: a client without retries notices an outage at once.
        self.ping_client = ping_client or client
        self.redis_label = redis_label  # how the one-line "unreachable" log names Redis (setting=target)
        self.redis_retries = 0  # failed attempts in a row while standing by with Redis away
        self.load_specs = load_specs
        self.settings = settings or MonitorSettings()
        self.history = history
        self.workers = workers
        self.keys = keys or PlatformKeys()
        self.queue_of = queue_of
        self.dispatcher = dispatcher or Dispatcher([LogSink()], client=client)
        self.rules = list(rules) if rules is not None else default_rules()
        self.store = AlertStore(client)
        self.manager = AlertManager(self.store, repeat_s=self.settings.repeat_s,
                                    pending_s={QUEUE_RULE: self.settings.rules.workers_for_s})
        self.last_evaluation: Evaluation | None = None
        # A lease of three passes: one slow evaluation does not hand the lead over.
        self.leadership = Leadership(client, lease_s=max(3 * self.settings.interval_s, 1.0))
        self.last_loop_at: float | None = None  # time.monotonic() of the latest finished loop pass
        self._specs: dict[str, EntrySpec] = {}
        self._specs_at: float | None = None
        self._schedule_error: str | None = None
        self._first_start: float | None = None

    # -- one evaluation --------------------------------------------------------------------
    def evaluate(self, now: float) -> Evaluation:
        """Ask every rule, reconcile the alerts, queue the notifications; never raises."""
        redis_error = self._ping()
        ctx = RuleContext(now=now, client=self.client, specs=self._current_specs(now), settings=self.settings.rules,
                          keys=self.keys, first_start=self._first_start_at(now, redis_error), history=self.history,
                          workers=self.workers, queue_of=self.queue_of, redis_error=redis_error, broker=self.broker)
        notes: list[Notification] = []
        skipped: dict[str, str] = {}
        errors: dict[str, str] = {}
        for rule in self.rules:
            name = type(rule).__name__
            unmet = self._unmet(rule, ctx)
            if unmet:
                skipped[name] = unmet
                continue
            try:
                firing = rule.evaluate(ctx)
            except Exception as exc:  # one broken rule must not blind the others
                ctx.redis_error = self._ping()
                if ctx.redis_error is not None:  # Redis went away mid-evaluation: the next one alerts on it
                    skipped[name] = "Redis became unreachable"
                    continue
                log.exception("monitor: rule %s failed", name)
                errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            notes += self.manager.reconcile(rule.names, firing, now=now,
                                            resolution=lambda alert, rule=rule: rule.resolution(ctx, alert))
        notes += self.manager.reconcile(META_RULES, self._meta_alerts(skipped, errors), now=now)
        if ctx.redis_error is None:
            self._beat(now)
        self._send(notes)
        evaluation = Evaluation(at=now, notifications=notes, firing=[a.alert for a in self.store.active().values()],
                                skipped=skipped, errors=errors, queues=ctx.cache.get("queues"),
                                redis_error=ctx.redis_error)
        self.last_evaluation = evaluation
        return evaluation

    def _ping(self) -> str | None:
        try:
            self.ping_client.ping()
        except redis.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _unmet(self, rule: Rule, ctx: RuleContext) -> str | None:
        if NEEDS_REDIS in rule.needs and ctx.redis_error is not None:
            return "Redis is unreachable"
        if NEEDS_HISTORY in rule.needs:
            if ctx.history is None:
                return "no history database configured"
            if not ctx.cache.get("history_checked") or ctx.history_error is not None:
                return "the history database is unavailable"
        if NEEDS_WORKERS in rule.needs and ctx.workers is None:
            return "no worker probe configured"
        return None

    def _current_specs(self, now: float) -> dict[str, EntrySpec]:
        fresh = self._specs_at is not None and 0 <= now - self._specs_at < self.settings.schedule_refresh_s
        if fresh:
            return self._specs
        self._specs_at = now
        try:
            self._specs = dict(self.load_specs(datetime.fromtimestamp(now, timezone.utc)))
            self._schedule_error = None
        except Exception as exc:  # an invalid schedule file: keep judging by the last good one
            self._schedule_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("monitor: cannot load the schedule (%s); keeping the last good one", self._schedule_error)
        return self._specs

    def _first_start_at(self, now: float, redis_error: str | None) -> float:
        if redis_error is None:
            try:
                self.client.set(FIRST_START_KEY, repr(now), nx=True)
                self._first_start = float(self.client.get(FIRST_START_KEY))
            except (redis.RedisError, TypeError, ValueError) as exc:
                log.warning("monitor: cannot read its first start (%r)", exc)
        if self._first_start is None:
            self._first_start = now  # this process's start, until Redis answers
        return self._first_start

    def _meta_alerts(self, skipped: dict[str, str], errors: dict[str, str]) -> list[Alert]:
        alerts = [Alert(RULE_FAILED, rule, Severity.CRITICAL, f"the monitor's rule {rule} failed: {error}",
                        {"error": error}) for rule, error in sorted(errors.items())]
        # A rule that could not even be asked keeps its failure alert as it was.
        alerts += [a.alert for a in self.store.active().values()
                   if a.alert.rule == RULE_FAILED and a.alert.subject in skipped]
        if self._schedule_error is not None:
            alerts.append(Alert(SCHEDULE_UNLOADABLE, "schedule", Severity.CRITICAL,
                                f"the monitor cannot load the schedule: {self._schedule_error} "
                                "(judging by the last good one; run `beatkeeper check`)",
                                {"error": self._schedule_error}))
        for delivery in self.dispatcher.deliveries:
            if delivery.failing_since is not None:
                alerts.append(Alert(SINK_FAILING, delivery.sink.name, Severity.CRITICAL,
                                    f"alerts cannot be delivered to {delivery.sink.name}: {delivery.last_error}",
                                    {"error": delivery.last_error, "dropped": delivery.dropped}))
        return alerts

    def _beat(self, now: float) -> None:
        try:  # the monitor's own heartbeat: `beatkeeper status` and /metrics show its age
            self.client.zadd(HEARTBEATS_KEY, {"monitor": now})
        except redis.RedisError as exc:
            log.warning("monitor: cannot record its heartbeat (%r)", exc)

    def _send(self, notes: list[Notification]) -> None:
        if not notes:
            self.store.flush()  # a change of details only, or changes left over from a Redis outage
            return
        self.dispatcher.log(notes)
        def stage(pipe) -> None:
            self.dispatcher.stage(pipe, notes)
            stage_resolved(pipe, notes)  # the dashboard's "recently resolved"

        if not self.store.flush(stage=stage):
            self.dispatcher.keep_locally(notes)
        self.dispatcher.wake()

    # -- the process -----------------------------------------------------------------------
    def run(self, *, stop: threading.Event, clock: Callable[[], float] = time.time) -> None:
        """Evaluate every ``interval_s`` until ``stop`` is set (while this monitor leads)."""
        interval_s = self.settings.interval_s
        log.info("monitor: evaluating %d rules every %.1f s", len(self.rules), interval_s)
        try:
            while not stop.is_set():
                started = time.monotonic()
                self.run_once(clock())
                stop.wait(max(0.0, interval_s - (self.last_loop_at - started)))
        finally:
            self.leadership.release()

    def run_once(self, now: float) -> Evaluation | None:
        """One pass of the loop: evaluate if this monitor leads (None when it stands by)."""
        evaluation = None
        try:
            redis_away = not self.leadership.leading and self._standby_without_redis()
            if not redis_away and self.leadership.hold():
                evaluation = self.evaluate(now)
        except Exception:  # evaluate never raises by design; this is the last line of defence
            log.exception("monitor: evaluation failed")
        self.last_loop_at = time.monotonic()
        return evaluation

    def _standby_without_redis(self) -> bool:
        """True (after one log line) while Redis does not answer a monitor that does not lead:
        there is nothing to take the lead in, and nothing to evaluate. A leader keeps
        evaluating through an outage, to alert on it."""
        error = self._ping()
        if error is None:
            if self.redis_retries:
                log.info("monitor: %s answers again after %d failed attempt(s)", self.redis_label, self.redis_retries)
            self.redis_retries = 0
            return False
        self.redis_retries += 1
        log.warning("monitor: %s unreachable: %s (trying again in %.0f s, attempt %d)", self.redis_label,
                    error.split(": ", 1)[-1], self.settings.interval_s, self.redis_retries)
        return True

    @property
    def specs(self) -> dict[str, EntrySpec]:
        """The registered entries as of the latest evaluation."""
        return self._specs

    def liveness(self) -> dict[str, Any]:
        """Whether the evaluation loop is turning (``/healthz``)."""
        limit_s = max(3 * self.settings.interval_s, 30.0)
        if self.last_loop_at is None:
            return {"alive": True, "detail": "starting", "role": self.leadership.role}
        age_s = time.monotonic() - self.last_loop_at
        return {"alive": age_s <= limit_s, "last_evaluation_age_s": round(age_s, 3), "limit_s": limit_s,
                "role": self.leadership.role}

"""Alerts, and the state that turns "still wrong" into exactly one message per incident.

Rules say what is wrong *now*: a list of :class:`Alert` (rule, subject, severity, summary).
:class:`AlertManager` compares that list with the alerts already firing and decides what
to say: ``firing`` once when an alert appears, a ``reminder`` every ``repeat_s`` while it
stays (``BEATKEEPER_ALERT_REPEAT``, default 1 h), ``resolved`` once when it is gone. An
alert is identified by its rule and subject; its summary and details may change while it
fires without a new message.

The firing alerts live in one Redis hash (``beatkeeper:monitor:alerts``), so a restarted
monitor knows what it already said. Redis being unreachable is itself an alert, so the
store also keeps the state in memory: changes made while Redis is away are written back,
in order, on the first flush after it returns.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

import redis

from monitoring.namespace import namespaced

log = logging.getLogger(__name__)

ALERTS_KEY = namespaced("beatkeeper:monitor:alerts")  # hash: "<rule>|<subject>" -> ActiveAlert JSON
DEFAULT_REPEAT_S = 3600.0


class Severity(StrEnum):
    CRITICAL = "critical"  # someone should look now: runs are not happening
    WARNING = "warning"  # something went wrong once, or may soon


class NotificationKind(StrEnum):
    FIRING = "firing"
    REMINDER = "reminder"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    """One thing wrong: ``rule`` says which check, ``subject`` what it is about (an entry, a queue)."""

    rule: str
    subject: str
    severity: Severity
    summary: str  # one line for the 3 a.m. reader
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.rule}|{self.subject}"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "subject": self.subject, "severity": self.severity.value,
                "summary": self.summary, "details": dict(self.details)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(rule=data["rule"], subject=data["subject"], severity=Severity(data["severity"]),
                   summary=data["summary"], details=data.get("details") or {})


@dataclass(frozen=True)
class ActiveAlert:
    """A firing alert as the store keeps it."""

    alert: Alert
    since: float  # unix seconds it started firing
    notified_at: float  # unix seconds of the latest firing/reminder message
    notifications: int = 1

    def to_json(self) -> str:
        return json.dumps({"alert": self.alert.to_dict(), "since": self.since, "notified_at": self.notified_at,
                           "notifications": self.notifications}, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> ActiveAlert:
        data = json.loads(raw)
        return cls(alert=Alert.from_dict(data["alert"]), since=float(data["since"]),
                   notified_at=float(data["notified_at"]), notifications=int(data.get("notifications", 1)))


@dataclass(frozen=True)
class Notification:
    """One message to send: an alert started firing, still fires, or resolved."""

    kind: NotificationKind
    alert: Alert
    at: float  # unix seconds of the evaluation that decided it
    since: float  # unix seconds the alert started firing

    @property
    def text(self) -> str:
        """The one-line message (Slack's ``text``, the e-mail body's first line)."""
        a = self.alert
        if self.kind is NotificationKind.RESOLVED:
            return (f"[RESOLVED] {a.rule} {a.subject}: {a.summary} "
                    f"(fired {_duration(self.at - self.since)}, since {iso_utc(self.since)})")
        label = "FIRING" if self.kind is NotificationKind.FIRING else "STILL FIRING"
        since = "" if self.kind is NotificationKind.FIRING else f" (since {iso_utc(self.since)})"
        return f"[{label} {a.severity.value}] {a.rule} {a.subject}: {a.summary}{since}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "alert": self.alert.to_dict(), "at": self.at, "since": self.since}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Notification:
        data = json.loads(raw)
        return cls(kind=NotificationKind(data["kind"]), alert=Alert.from_dict(data["alert"]),
                   at=float(data["at"]), since=float(data["since"]))


def iso_utc(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


class AlertStore:
    """The firing alerts: Redis is the record, memory the working copy (and the fallback).

    Reads come from memory once loaded. ``put``/``remove`` change memory at once and queue the
    write; ``flush`` writes every queued change in one transaction (with anything else the
    caller stages in it, such as outgoing notifications) and keeps them queued if Redis fails.
    """

    def __init__(self, client: redis.Redis, *, key: str = ALERTS_KEY):
        self.client = client
        self.key = key
        self._alerts: dict[str, ActiveAlert] = {}
        self._loaded = False
        self._unwritten: list[tuple[str, ActiveAlert | None]] = []

    def active(self) -> dict[str, ActiveAlert]:
        """Every firing alert by key (loading them from Redis the first time it answers)."""
        if not self._loaded:
            self._load()
        return dict(self._alerts)

    def _load(self) -> None:
        try:
            raw = self.client.hgetall(self.key)
        except redis.RedisError as exc:
            log.warning("alerts: cannot read the alert state (%r); using what this process knows", exc)
            return
        stored = {}
        for key, value in raw.items():
            try:
                stored[key] = ActiveAlert.from_json(value)
            except (ValueError, KeyError, TypeError) as exc:  # one unreadable record must not hide the rest
                log.error("alerts: dropping unreadable state %s (%r)", key, exc)
        for key, value in self._unwritten:  # what was decided while Redis was away wins
            _apply(stored, key, value)
        self._alerts = stored
        self._loaded = True

    def put(self, active: ActiveAlert) -> None:
        _apply(self._alerts, active.alert.key, active)
        self._unwritten.append((active.alert.key, active))

    def remove(self, key: str) -> None:
        _apply(self._alerts, key, None)
        self._unwritten.append((key, None))

    def flush(self, *, stage: Callable[[Any], None] | None = None) -> bool:
        """Write the queued changes (and whatever ``stage(pipe)`` adds) atomically; False if Redis failed."""
        if not self._loaded:
            self._load()
        if not self._unwritten and stage is None:
            return True
        try:
            with self.client.pipeline(transaction=True) as pipe:
                for key, value in self._unwritten:
                    if value is None:
                        pipe.hdel(self.key, key)
                    else:
                        pipe.hset(self.key, key, value.to_json())
                if stage is not None:
                    stage(pipe)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("alerts: cannot write the alert state (%r); kept in memory until Redis is back", exc)
            return False
        self._unwritten.clear()
        return True


def _apply(alerts: dict[str, ActiveAlert], key: str, value: ActiveAlert | None) -> None:
    if value is None:
        alerts.pop(key, None)
    else:
        alerts[key] = value


class AlertManager:
    """Decides, per evaluation, which notifications the firing alerts deserve."""

    def __init__(self, store: AlertStore, *, repeat_s: float = DEFAULT_REPEAT_S,
                 pending_s: Mapping[str, float] | None = None):
        self.store = store
        self.repeat_s = repeat_s
        # rule -> seconds an alert must keep firing before it is sent (flappy checks such as
        # "no worker answered"); how long it has, is kept in memory only: a restart re-waits.
        self.pending_s = dict(pending_s or {})
        self._pending_since: dict[str, float] = {}

    def reconcile(self, rules: Collection[str], firing: Sequence[Alert], *, now: float,
                  resolution: Callable[[Alert], str] | None = None) -> list[Notification]:
        """Notifications for the alerts of ``rules`` firing now versus those already firing.

        Only alerts of ``rules`` are resolved: a rule that could not be evaluated is simply
        not passed, and its alerts stay as they were. A resolve message states the current
        situation, ``resolution(alert)`` (the rule's), never the stale summary it fired with.
        """
        active = self.store.active()
        notes: list[Notification] = []
        firing_keys = set()
        for alert in firing:
            if alert.rule not in rules:
                raise ValueError(f"alert of rule {alert.rule!r} reconciled under {sorted(rules)}")
            firing_keys.add(alert.key)
            current = active.get(alert.key)
            if current is None:
                if self._still_pending(alert, now):
                    continue
                self.store.put(ActiveAlert(alert=alert, since=now, notified_at=now))
                notes.append(Notification(NotificationKind.FIRING, alert, at=now, since=now))
            elif now - current.notified_at >= self.repeat_s:
                self.store.put(replace(current, alert=alert, notified_at=now, notifications=current.notifications + 1))
                notes.append(Notification(NotificationKind.REMINDER, alert, at=now, since=current.since))
            elif current.alert != alert:  # fresher details, no message
                self.store.put(replace(current, alert=alert))
        for key, current in active.items():
            if current.alert.rule in rules and key not in firing_keys:
                self.store.remove(key)
                notes.append(Notification(NotificationKind.RESOLVED, _resolved(current.alert, resolution),
                                          at=now, since=current.since))
        for key in [k for k in self._pending_since if k.split("|", 1)[0] in rules and k not in firing_keys]:
            del self._pending_since[key]
        return notes

    def _still_pending(self, alert: Alert, now: float) -> bool:
        wait_s = self.pending_s.get(alert.rule, 0.0)
        if wait_s <= 0:
            return False
        since = self._pending_since.setdefault(alert.key, now)
        if now - since < wait_s:
            return True
        del self._pending_since[alert.key]
        return False


def _resolved(alert: Alert, resolution: Callable[[Alert], str] | None) -> Alert:
    """The alert as its resolve message says it: the situation now, with what it said before in details."""
    now_summary = f"cleared (it said: {alert.summary})"
    if resolution is not None:
        try:
            now_summary = resolution(alert)
        except Exception as exc:  # the resolve must still be sent
            log.warning("alerts: cannot describe the resolution of %s (%r)", alert.key, exc)
    return replace(alert, summary=now_summary, details={**alert.details, "fired_with": alert.summary})


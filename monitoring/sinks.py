"""Where notifications go: the log (always), a webhook and e-mail, chosen by the environment.

| variable                          | default              | meaning                                    |
|-----------------------------------|----------------------|--------------------------------------------|
| BEATKEEPER_ALERT_WEBHOOK_URL      | (none: no webhook)   | POSTed JSON: Slack's ``text`` + ``alert``  |
| BEATKEEPER_ALERT_SMTP_HOST        | (none: no e-mail)    | SMTP server                                |
| BEATKEEPER_ALERT_SMTP_PORT        | 25                   |                                            |
| BEATKEEPER_ALERT_SMTP_TLS         | ssl on 465, starttls | ``ssl``, ``starttls`` or ``none``          |
|                                   | on 587, else none    |                                            |
| BEATKEEPER_ALERT_SMTP_USER        | (none: no login)     |                                            |
| BEATKEEPER_ALERT_SMTP_PASSWORD    | (none)               |                                            |
| BEATKEEPER_ALERT_SMTP_FROM        | beatkeeper@<host>    |                                            |
| BEATKEEPER_ALERT_SMTP_TO          | (required with HOST) | comma-separated recipients                 |

Sending never blocks the monitor and never stops it: each remote sink has an outbox (a
Redis list, so notifications survive a monitor restart; memory while Redis is away) and a
thread that delivers it in order, retrying a failure with doubling backoff (1 s up to
60 s, ``BEATKEEPER_ALERT_SINK_ATTEMPTS`` tries, default 8) and logging each failure. A
notification that still fails is logged as an error with its full text and dropped,
so the outbox never stalls behind it.
"""
from __future__ import annotations

import json
import logging
import smtplib
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from typing import Any, Protocol

import redis

from monitoring.alerts import Notification, NotificationKind, Severity
from monitoring.namespace import namespaced
from monitoring.rules.settings import MonitorSettingError, SmtpSettings, smtp_settings_from_env

log = logging.getLogger(__name__)
alert_log = logging.getLogger("beatkeeper.alerts")  # the structured log sink's logger

OUTBOX_PREFIX = namespaced("beatkeeper:monitor:outbox:")  # + sink name: Redis list of Notification JSON
SEND_TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
DEFAULT_ATTEMPTS = 8
_DELIVERED, _DROPPED, _STOPPED = "delivered", "dropped", "stopped"


class Sink(Protocol):
    name: str

    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise on failure (the caller retries)."""


class LogSink:
    """One JSON line per notification on the ``beatkeeper.alerts`` logger: always on, never fails."""

    name = "log"

    def send(self, notification: Notification) -> None:
        if notification.kind is NotificationKind.RESOLVED:
            level = logging.INFO
        else:
            level = logging.ERROR if notification.alert.severity is Severity.CRITICAL else logging.WARNING
        alert_log.log(level, "%s", json.dumps({"text": notification.text, **notification.to_dict()},
                                              sort_keys=True, default=str))


class WebhookSink:
    """A JSON POST per notification: ``text`` (Slack's incoming-webhook field) plus the structured alert."""

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = SEND_TIMEOUT_S):
        self.url = url
        self.timeout_s = timeout_s

    def send(self, notification: Notification) -> None:
        body = json.dumps({"text": notification.text, **notification.to_dict()}, default=str).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # non-2xx raises HTTPError
            response.read()


class SmtpSink:
    """An e-mail per notification; the subject is the notification's one line."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings, *, timeout_s: float = SEND_TIMEOUT_S):
        self.settings = settings
        self.timeout_s = timeout_s

    def send(self, notification: Notification) -> None:
        s = self.settings
        message = EmailMessage()
        message["Subject"] = f"[beatkeeper] {notification.text}"[:250]
        message["From"] = s.sender
        message["To"] = ", ".join(s.recipients)
        message.set_content(notification.text + "\n\n" + json.dumps(notification.to_dict(), indent=2, default=str))
        smtp_class = smtplib.SMTP_SSL if s.tls == "ssl" else smtplib.SMTP
        with smtp_class(s.host, s.port, timeout=self.timeout_s) as server:
            if s.tls == "starttls":
                server.starttls()
            if s.user:
                server.login(s.user, s.password or "")
            server.send_message(message)


def sinks_from_env(environ: Mapping[str, str]) -> list[Sink]:
    """The log sink, plus the webhook and SMTP sinks the environment configures."""
    sinks: list[Sink] = [LogSink()]
    url = (environ.get("BEATKEEPER_ALERT_WEBHOOK_URL") or "").strip()
    if url:
        if not url.startswith(("http://", "https://")):
            raise MonitorSettingError("BEATKEEPER_ALERT_WEBHOOK_URL", url, "expected an http:// or https:// URL")
        sinks.append(WebhookSink(url))
    host = (environ.get("BEATKEEPER_ALERT_SMTP_HOST") or "").strip()
    if host:
        sinks.append(SmtpSink(smtp_settings_from_env(environ, host)))
    return sinks


class Outbox:
    """One sink's queue: a Redis list, and memory for what arrived while Redis was away."""

    def __init__(self, client: redis.Redis | None, key: str):
        self.client = client
        self.key = key
        self._local: deque[str] = deque()
        self._lock = threading.Lock()

    def stage(self, pipe: Any, notifications: Sequence[Notification]) -> None:
        if notifications:
            pipe.rpush(self.key, *(n.to_json() for n in notifications))

    def keep(self, notifications: Sequence[Notification]) -> None:
        with self._lock:
            self._local.extend(n.to_json() for n in notifications)

    def peek(self) -> tuple[str, bool] | None:
        """The oldest queued notification and whether it is held in memory; None when empty."""
        with self._lock:
            if self._local:
                return self._local[0], True
        if self.client is None:
            return None
        raw = self.client.lindex(self.key, 0)
        return None if raw is None else (raw, False)

    def pop(self, local: bool) -> None:
        if local:
            with self._lock:
                self._local.popleft()
        else:
            self.client.lpop(self.key)


class Delivery:
    """Delivers one sink's outbox in order; a failure is retried with backoff, never raised."""

    def __init__(self, sink: Sink, outbox: Outbox, *, attempts: int = DEFAULT_ATTEMPTS,
                 wait: Callable[[float], bool] | None = None):
        self.sink = sink
        self.outbox = outbox
        self.attempts = attempts
        self._stop = threading.Event()
        self._wake = threading.Event()
        # wait(seconds) -> True when asked to stop; tests pass one that records and returns at once.
        self.wait = wait or self._stop.wait
        self.failing_since: float | None = None  # set while the latest try failed (monitor alerts on it)
        self.last_error: str | None = None
        self.delivered = 0
        self.dropped = 0

    def deliver_pending(self, *, clock: Callable[[], float] | None = None) -> int:
        """Deliver everything queued now; returns how many were delivered (not dropped)."""
        clock = clock or time.time
        done = 0
        while not self._stop.is_set():
            try:
                head = self.outbox.peek()
            except redis.RedisError as exc:
                log.warning("alerts: %s outbox unreadable (%r); retrying later", self.sink.name, exc)
                return done
            if head is None:
                return done
            raw, local = head
            result = self._deliver(raw, clock)
            if result == _STOPPED:  # stays queued for the next start
                return done
            done += result == _DELIVERED
            try:
                self.outbox.pop(local)
            except redis.RedisError as exc:  # delivered but not popped: it may be sent twice, never lost
                log.warning("alerts: %s outbox pop failed (%r)", self.sink.name, exc)
                return done
        return done

    def _deliver(self, raw: str, clock: Callable[[], float]) -> str:
        try:
            notification = Notification.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("alerts: %s dropping an unreadable notification (%r): %.200s", self.sink.name, exc, raw)
            return _DROPPED
        delay_s = BACKOFF_FIRST_S
        for attempt in range(1, self.attempts + 1):
            try:
                self.sink.send(notification)
            except Exception as exc:  # any failure of a sink is retried, logged, never raised
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.failing_since is None:
                    self.failing_since = clock()
                log.warning("alerts: %s delivery failed (attempt %d of %d): %s", self.sink.name, attempt,
                            self.attempts, self.last_error)
                if attempt == self.attempts:
                    break
                if self.wait(delay_s):
                    return _STOPPED
                delay_s = min(delay_s * 2, BACKOFF_MAX_S)
                continue
            self.failing_since = None
            self.delivered += 1
            return _DELIVERED
        self.dropped += 1
        log.error("alerts: %s gave up on a notification after %d attempt(s): %s", self.sink.name, self.attempts,
                  notification.text)
        return _DROPPED

    def wake(self) -> None:
        self._wake.set()

    def run(self, *, poll_s: float = 5.0) -> None:
        """The delivery thread's loop: deliver, then sleep until woken (or ``poll_s``, for leftovers)."""
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.deliver_pending()
            except Exception:  # the thread must outlive anything a sink or Redis does
                log.exception("alerts: %s delivery loop error", self.sink.name)
            self._wake.wait(poll_s)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


class Dispatcher:
    """Sends each notification to the log at once and queues it for every remote sink."""

    def __init__(self, sinks: Sequence[Sink], *, client: redis.Redis | None,
                 attempts: int = DEFAULT_ATTEMPTS, wait: Callable[[float], bool] | None = None):
        self.log_sinks = [s for s in sinks if isinstance(s, LogSink)] or [LogSink()]
        self.deliveries = [Delivery(s, Outbox(client, OUTBOX_PREFIX + s.name), attempts=attempts, wait=wait)
                           for s in sinks if not isinstance(s, LogSink)]
        self._threads: list[threading.Thread] = []

    def stage(self, pipe: Any, notifications: Sequence[Notification]) -> None:
        """Queue ``notifications`` for the remote sinks inside the caller's Redis transaction."""
        for delivery in self.deliveries:
            delivery.outbox.stage(pipe, notifications)

    def keep_locally(self, notifications: Sequence[Notification]) -> None:
        """Queue ``notifications`` in memory (Redis is away)."""
        for delivery in self.deliveries:
            delivery.outbox.keep(notifications)

    def log(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            for sink in self.log_sinks:
                sink.send(notification)

    def deliver_pending(self) -> int:
        """Deliver every queued notification in this thread (tests, and a one-shot run)."""
        return sum(d.deliver_pending() for d in self.deliveries)

    def wake(self) -> None:
        for delivery in self.deliveries:
            delivery.wake()

    def start(self) -> None:
        """One daemon thread per remote sink, so a slow webhook never delays the e-mail."""
        for delivery in self.deliveries:
            thread = threading.Thread(target=delivery.run, name=f"beatkeeper-alerts-{delivery.sink.name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, *, timeout_s: float = 5.0) -> None:
        for delivery in self.deliveries:
            delivery.stop()
        for thread in self._threads:
            thread.join(timeout_s)

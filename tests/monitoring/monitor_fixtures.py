"""Helpers for the monitor's tests: schedules as specs, a monitor on an injected clock,
recording and real receiving sinks (an HTTP webhook receiver, an SMTP server), history rows.

Import the fixtures you use from here (this is not a conftest).
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitoring.alerts import Notification, NotificationKind
from monitoring.db import engine_for
from monitoring.history import HistoryStore, RunRecord
from monitoring.monitor import Monitor, MonitorSettings
from monitoring.rules.base import PlatformKeys
from monitoring.rules.settings import RuleSettings
from monitoring.sinks import Dispatcher, LogSink
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule
from tests.monitoring.databases import TEST_SPOOL_KEY
from tests.servers import free_port

#: A whole minute, so every-60 s grids land on it.
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
KEYS = PlatformKeys()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ts(seconds: float) -> float:
    """Unix seconds of T0 + ``seconds``: the injected clock's readings."""
    return at(seconds).timestamp()


def specs_of(raw: dict) -> dict:
    """Validated entries (no task registry, 1 s minimum interval) from a schedule dict."""
    return validate_schedule(raw, settings=ScheduleSettings(min_interval_s=1), registered_tasks=None,
                             now=T0).entries


def register_in_redbeat(client, *names: str) -> None:
    """What beat does at start: each entry in redbeat's schedule (the score is irrelevant here)."""
    client.zadd(KEYS.redbeat_schedule_key, {KEYS.redbeat_prefix + name: ts(0) for name in names})


class RecordingSink:
    """A remote sink that records what it is sent; fails its first ``failures`` sends."""

    def __init__(self, name: str = "recording", *, failures: int = 0):
        self.name = name
        self.failures = failures
        self.sent: list[Notification] = []
        self.attempts = 0

    def send(self, notification: Notification) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError(f"{self.name} down (attempt {self.attempts})")
        self.sent.append(notification)

    def kinds(self, rule: str | None = None) -> list[NotificationKind]:
        return [n.kind for n in self.sent if rule is None or n.alert.rule == rule]


class FakeWorkers:
    """A worker probe answering what the test sets (``consumers`` maps worker -> queues)."""

    def __init__(self, consumers: dict[str, list[str]] | None = None):
        self.consumers_map = consumers or {}

    def consumers(self) -> dict[str, list[str]]:
        return dict(self.consumers_map)


def make_monitor(client, specs: dict, *, sinks=(), history: HistoryStore | None = None, workers=None,
                 rules=None, **rule_settings) -> Monitor:
    """A monitor on ``client`` with ``sinks`` (delivered synchronously via ``deliver``), no sleeping backoff."""
    settings = MonitorSettings(rules=RuleSettings(**{"workers_for_s": 0.0, **rule_settings}))
    dispatcher = Dispatcher([LogSink(), *sinks], client=client, attempts=3, wait=lambda _s: False)
    return Monitor(client=client, load_specs=lambda _now: specs, settings=settings, history=history,
                   workers=workers, keys=KEYS, dispatcher=dispatcher, rules=rules)


def evaluate(monitor: Monitor, seconds: float):
    """One evaluation at T0 + ``seconds``, then deliver what it queued."""
    evaluation = monitor.evaluate(ts(seconds))
    monitor.dispatcher.deliver_pending()
    return evaluation


@pytest.fixture
def history(sqlite_url, redis_client) -> HistoryStore:
    """A fresh, migrated SQLite history with its own spool key."""
    return HistoryStore(engine_for(sqlite_url), redis_client=redis_client, spool_key=TEST_SPOOL_KEY)


def a_run(entry: str, fire_s: float, *, status: str = "success", task: str = "jobs.work", task_id: str | None = None,
          took_s: float = 1.0, **fields) -> RunRecord:
    """The history row of ``entry``'s run for the instant T0 + ``fire_s``."""
    fire_at = at(fire_s)
    row = dict(task_name=task, task_id=task_id or f"{entry}-{fire_s}", status=status, entry=entry, fire_at=fire_at,
               started_at=fire_at + timedelta(seconds=0.1), finished_at=fire_at + timedelta(seconds=took_s))
    return RunRecord(**{**row, **fields})


# -- real receivers -----------------------------------------------------------------------------

class WebhookReceiver:
    """A real HTTP server recording each POSTed JSON body; answers 500 to the first ``failures``."""

    def __init__(self, *, failures: int = 0):
        self.bodies: list[dict] = []
        self.failures = failures
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests += 1
                if receiver.requests <= receiver.failures:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def kinds(self, rule: str) -> list[str]:
        return [b["kind"] for b in self.bodies if b["alert"]["rule"] == rule]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


class MailReceiver:
    """A real SMTP server (aiosmtpd) keeping every message it accepts."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = message_from_bytes(envelope.content, policy=policy.default)
                receiver.messages.append((envelope.rcpt_tos, message))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def subjects(self) -> list[str]:
        return [str(message["Subject"]) for _, message in self.messages]

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def mail():
    receiver = MailReceiver()
    yield receiver
    receiver.close()

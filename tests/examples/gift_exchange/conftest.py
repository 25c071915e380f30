"""The gift-exchange tests' fixtures: the example's real tables (SQLite), a real local SMTP
server (aiosmtpd) the example sends through, and the real beat scheduler on an injected clock
publishing to the real worker."""
from __future__ import annotations

from datetime import datetime

import pytest

from examples.gift_exchange import jobs  # noqa: F401  (the tasks a worker started with the example registers)
from examples.gift_exchange.tables import engine_for
from tests.tasks.beat.harness import BeatDriver, PublishingScheduler
from tests.monitoring.databases import app_history, sqlite_url  # noqa: F401
from tests.monitoring.monitor_fixtures import MailReceiver
from tests.postgres import fresh_database_url


class LiveBeat(BeatDriver):
    """The real scheduler, publishing for real, on the test's clock."""

    def start(self) -> PublishingScheduler:
        return PublishingScheduler(app=self.app, max_interval=self.max_interval_s,
                                   lock_timeout=5 * self.max_interval_s, lazy=False)


@pytest.fixture
def gift_db(monkeypatch, tmp_path):
    """The example's tables on SQLite (its default)."""
    url = f"sqlite:///{tmp_path / 'gift_exchange.db'}"
    monkeypatch.setenv("GIFT_DATABASE_URL", url)
    return engine_for(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def gift_db_on(request, monkeypatch, tmp_path):
    """The example's tables once on SQLite, once on a private Postgres."""
    url = f"sqlite:///{tmp_path / 'gift_exchange.db'}" if request.param == "sqlite" else fresh_database_url(request)
    monkeypatch.setenv("GIFT_DATABASE_URL", url)
    engine = engine_for(url)
    assert engine.dialect.name == request.param
    return engine


@pytest.fixture
def mail(monkeypatch):
    """The SMTP server the example sends through (GIFT_SMTP_HOST/PORT point at it)."""
    receiver = MailReceiver()
    monkeypatch.setenv("GIFT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("GIFT_SMTP_PORT", str(receiver.port))
    monkeypatch.setenv("GIFT_SMTP_FROM", "klaus@example.test")
    for name in ("GIFT_SMTP_TLS", "GIFT_SMTP_USER", "GIFT_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    yield receiver
    receiver.close()


def live_beat(app, monkeypatch, tmp_path, schedule: dict, *, start: datetime, disable: str = "") -> LiveBeat:
    """Beat on ``schedule`` (the platform's own entries left out, and ``disable``'s)."""
    left_out = ",".join(filter(None, ["beatkeeper-heartbeat", "beatkeeper-purge-history", disable]))
    return LiveBeat(app, monkeypatch, tmp_path, schedule, start=start, env={"BEATKEEPER_DISABLE": left_out})

"""Drive the real beat scheduler (redbeat-backed, real Redis) with an injected clock.

The scheduler's due decisions are the real code; only the final broker publish is
replaced by a recorder, so a simulated week runs in seconds.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tasks.beat.scheduler import BeatkeeperScheduler


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class RecordingScheduler(BeatkeeperScheduler):
    """The real scheduler; publishing appends (entry, fire instant) instead of sending."""

    def __init__(self, *args, sent: list, **kwargs):
        self.sent = sent
        super().__init__(*args, **kwargs)

    def _publish(self, entry, fire_at, producer, expires_at=None) -> None:
        self.sent.append((entry.name, fire_at))

    def on_lock_lost(self, exc: Exception) -> None:
        raise AssertionError(f"lost the beat lock: {exc}")

    @property
    def producer(self):  # nothing is published
        return None


class PublishingScheduler(BeatkeeperScheduler):
    """The real scheduler, publishing to the real broker."""

    def on_lock_lost(self, exc: Exception) -> None:
        raise AssertionError(f"lost the beat lock: {exc}")


class BeatDriver:
    """Starts (and restarts) a scheduler on ``app`` and ticks it through simulated time."""

    def __init__(self, app, monkeypatch, tmp_path: Path, schedule: dict, *, start: datetime,
                 max_interval_s: float = 3600.0, env: dict[str, str] | None = None):
        path = tmp_path / "schedule.json"
        path.write_text(json.dumps(schedule))
        monkeypatch.setenv("BEATKEEPER_SCHEDULE", str(path))
        monkeypatch.setenv("BEATKEEPER_DISABLE", "beatkeeper-heartbeat")
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        self.clock = FakeClock(start)
        monkeypatch.setattr(app, "now", self.clock)
        self.app = app
        self.max_interval_s = max_interval_s
        self.sent: list[tuple[str, datetime]] = []
        self.scheduler = self.start()

    def start(self) -> RecordingScheduler:
        return RecordingScheduler(app=self.app, sent=self.sent, max_interval=self.max_interval_s,
                                  lock_timeout=5 * self.max_interval_s, lazy=False)

    def restart(self) -> None:
        """A new beat process: fresh scheduler object, same Redis, same clock (the old one shut
        down, giving the beat lock up)."""
        self.scheduler.close()
        self.scheduler = self.start()

    def run_until(self, end: datetime) -> None:
        while self.clock.now < end:
            wait_s = self.scheduler.tick()
            self.clock.now = min(end, self.clock.now + timedelta(seconds=max(wait_s, 0.001)))

    def fires_of(self, name: str) -> list[datetime]:
        return [at for entry, at in self.sent if entry == name]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)

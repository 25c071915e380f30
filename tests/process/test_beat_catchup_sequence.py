"""``catchup: all`` after a 60 s outage, with a 2 s task and ``overlap: skip``: every missed instant
runs, oldest first, none skipped for overlap (``tasks.beat.catchup_gate``).

Sent together, the missed instants met at the workers and skipped each other (issue 13: 4 of 5
ended ``skipped_overlap``). The real scheduler runs in this process on an injected clock (the
outage costs no wall time: beat's clock is set 60 s back, then forward), publishing to the real
broker; a real prefork worker runs the instants and counts them in the ledger.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from monitoring.events import read_events
from tasks.beat.scheduler import ON_TIME_SLACK_S
from tasks.guard.overlap import SKIPPED_COUNTS_KEY
from tasks.guard.claim import ClaimState, claim_record, run_id_for
from tests.tasks.beat import ledger_tasks as lt
from tests.tasks.beat.harness import BeatDriver, PublishingScheduler
from tests.process.test_beat_faults import executed, platform_env, start_worker

pytestmark = pytest.mark.process

OUTAGE_S = 60
EVERY_S = 10
TASK_S = 2.0
LOOP_INTERVAL_S = 1.0
SCHEDULE = {"catch-all": {"task": lt.record.name, "every": EVERY_S, "kwargs": {"hold_s": TASK_S},
                          "catchup": "all", "catchup_max": 30, "overlap": "skip"}}


class LiveDriver(BeatDriver):
    """The real scheduler publishing for real (the clock: whatever the test sets as ``app.now``)."""

    def start(self) -> PublishingScheduler:
        return PublishingScheduler(app=self.app, max_interval=self.max_interval_s,
                                   lock_timeout=5 * self.max_interval_s, lazy=False)

    def tick_until(self, done, *, timeout_s: float, what: str) -> None:
        """Beat's loop: tick, sleep what the tick says (at most the loop interval), until ``done()``."""
        deadline = time.monotonic() + timeout_s
        pause = threading.Event()
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            pause.wait(min(max(self.scheduler.tick(), 0.01), self.max_interval_s))


def test_catchup_all_runs_every_missed_instant_oldest_first_one_after_another(
        app, processes, redis_client, monkeypatch, tmp_path):
    start_worker(processes, platform_env(tmp_path, SCHEDULE), "ledger", concurrency=2)
    # The beat before the outage: its clock OUTAGE_S behind the wall clock.
    driver = LiveDriver(app, monkeypatch, tmp_path, SCHEDULE,
                        start=datetime.now(timezone.utc) - timedelta(seconds=OUTAGE_S),
                        max_interval_s=LOOP_INTERVAL_S, env={"BEATKEEPER_MAX_RUNS_PER_HOUR": "1000000"})
    monkeypatch.setattr(app, "now", lambda: datetime.now(timezone.utc) - timedelta(seconds=OUTAGE_S))
    driver.tick_until(lambda: executed(redis_client).get("catch-all"), timeout_s=EVERY_S + 30,
                      what="the first run before the outage")
    [before] = executed(redis_client)["catch-all"]
    # The outage: beat stops, and is back OUTAGE_S later.
    monkeypatch.setattr(app, "now", lambda: datetime.now(timezone.utc))
    driver.restart()
    back_at = app.now()
    missed = [before + timedelta(seconds=EVERY_S * k) for k in range(1, OUTAGE_S // EVERY_S + 1)
              if before + timedelta(seconds=EVERY_S * k) < back_at - timedelta(seconds=LOOP_INTERVAL_S + ON_TIME_SLACK_S)]
    driver.tick_until(lambda: max(executed(redis_client)["catch-all"]) >= back_at, timeout_s=90,
                      what="the catch-up to reach the present")
    driver.scheduler.close()

    runs = executed(redis_client)["catch-all"]
    ran = sorted(runs)
    grid = [before + timedelta(seconds=EVERY_S * k) for k in range(len(ran))]
    assert len(missed) >= OUTAGE_S // EVERY_S - 2 and set(missed) <= set(ran)
    assert ran == grid, "an instant between the first and the last did not run"
    assert all(n == 1 for n in runs.values())
    # oldest first, one after another: each started after the previous one ended
    started = lt.executed_at(redis_client)
    ends = [started[f"catch-all|{t.isoformat()}"] for t in ran]
    assert all(later - earlier >= TASK_S for earlier, later in zip(ends, ends[1:]))
    # none skipped for overlap, none given up as missed
    states = {t: claim_record(redis_client, run_id_for(entry="catch-all", fire_at=t, task_id="")) for t in ran}
    assert {t: r.state for t, r in states.items() if r.state is not ClaimState.SUCCEEDED} == {}
    assert read_events(redis_client, kind="overlap_detected") == [] and not redis_client.hgetall(SKIPPED_COUNTS_KEY)
    assert read_events(redis_client, kind="missed_runs") == []
    print(f"{len(missed)} missed instants caught up one after another; {len(ran)} runs in all, "
          f"catch-up took {ends[-1] - back_at.timestamp():.1f} s")

"""``catchup: all``: the instants an entry is behind on run one after another, oldest first: beat
sends the next only once the run of the previous one has ended.

Behind means a missed instant to catch up, or several instants due at one tick (a takeover, a
late tick). Sent together, they would meet each other at the workers, and the entry's overlap
policy (``skip`` by default) would skip all but one. So beat sends the oldest, records it
(publish-then-record, watched by ``tasks.beat.delivery_watch`` as any dispatch) and holds the rest —
and, until it ends, the instants after it — while the previous run is in flight, as its run
claim (``tasks.run_ids``, written by the worker's guard) says:

- claimed and running with a live lease, or waiting for its own retry: in flight, hold;
- ended (succeeded, failed, skipped, dead-lettered), or its lease lapsed (the worker died;
  the run comes back only on redelivery): over, send the next;
- not claimed yet: in flight while a worker may still take it — for :data:`UNCLAIMED_HOLD_S`
  after this beat sent it (the delivery watch sends a lost one again meanwhile). A dispatch sent
  by another beat process (before a restart or failover) and never claimed does not hold.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import redis

from tasks.run_ids import RUN_KEY_PREFIX, ClaimState, record_key, run_id_for

UNCLAIMED_HOLD_S = 60.0  # seconds a sent, unclaimed catch-up run holds the next one
POLL_S = 0.2  # seconds between looks at a held entry's previous run (a 1 s entry must catch up too)


def previous_in_flight(client: redis.Redis, *, entry: str, previous: datetime | None,
                       sent_at: float | None, now_ts: float) -> bool:
    """Whether the run of ``entry``'s instant ``previous`` has not ended yet.

    ``sent_at``: unix time this beat sent that instant, if it did (None: another process did)."""
    if previous is None:
        return False
    run_id = run_id_for(entry=entry, fire_at=previous, task_id="")
    with client.pipeline(transaction=False) as pipe:
        pipe.hget(record_key(run_id), "state")
        pipe.exists(RUN_KEY_PREFIX + run_id)
        state, leased = pipe.execute()
    if state is None:
        return sent_at is not None and now_ts - sent_at < UNCLAIMED_HOLD_S
    state = ClaimState(state)
    return state is ClaimState.RETRYING or (state is ClaimState.RUNNING and bool(leased))


class CatchupSequence:
    """One beat's catch-up dispatches in flight: entry -> (instant, unix s sent) of its last one."""

    def __init__(self):
        self.sent: dict[str, tuple[datetime, float]] = {}

    def to_send(self, client: redis.Redis, *, entry: str, run: list[datetime], previous: datetime | None,
                now: datetime, on_time_s: float) -> tuple[list[datetime], bool] | None:
        """Which of ``run`` (an ``all`` entry's due instants, oldest first) to send now, and whether
        they are a catch-up (then only the oldest); None: hold them, the previous run is in flight."""
        behind = len(run) > 1 or run[0] < now - timedelta(seconds=on_time_s)
        if behind or entry in self.sent:
            mine = self.sent.get(entry)
            if previous_in_flight(client, entry=entry, previous=previous, now_ts=now.timestamp(),
                                  sent_at=mine[1] if mine is not None and mine[0] == previous else None):
                return None
            self.sent.pop(entry, None)
        return (run[:1], True) if behind else (run, False)

    def record(self, entry: str, fire_at: datetime, sent_at: float) -> None:
        """``fire_at`` of ``entry`` was sent as a catch-up at ``sent_at`` (unix s)."""
        self.sent[entry] = (fire_at, sent_at)

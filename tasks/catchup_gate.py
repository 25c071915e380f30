"""Catch-up instants of one entry run one after another: beat sends the next missed instant only
once the run of the previous one has ended.

Sent together, missed instants would meet each other at the workers, and an entry's overlap
policy (``skip`` by default) would skip all but one of them. So beat sends one catch-up instant
per entry, records it (publish-then-record, watched by ``tasks.delivery_watch`` as any dispatch)
and holds the next until the previous run is over, as its run claim (``tasks.run_claim``) says:

- claimed and running with a live lease, or waiting for its own retry: in flight, hold;
- ended (succeeded, failed, skipped, dead-lettered), or its lease lapsed (the worker died;
  the run comes back only on redelivery): over, send the next;
- not claimed yet: in flight while a worker may still take it — for :data:`UNCLAIMED_HOLD_S`
  after this beat sent it (the delivery watch sends a lost one again meanwhile). A dispatch sent
  by another beat process (before a restart or failover) and never claimed does not hold.
"""
from __future__ import annotations

from datetime import datetime

import redis

from tasks.run_claim import RUN_KEY_PREFIX, ClaimState, record_key, run_id_for

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
    state = ClaimState(state.decode() if isinstance(state, bytes) else state)
    return state is ClaimState.RETRYING or (state is ClaimState.RUNNING and bool(leased))

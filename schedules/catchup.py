"""What beat runs for the instants it finds due: on time, or missed while it was down.

An instant is *on time* when it is at most ``on_time_s`` old at the tick that sees it
(beat's own loop jitter); older due instants were *missed* (beat was down, the clock
jumped forward, Redis was away). On-time instants always run. Missed ones follow the
entry's ``catchup`` policy:

- ``skip``: none runs; each is recorded as missed.
- ``latest`` (default): the most recent one runs if it is within ``catchup_window``;
  when an on-time instant runs anyway, every missed one is superseded by it.
- ``all``: each one within ``catchup_window`` runs, oldest first, at most ``catchup_max``
  (the most recent ones); beyond the cap the rest are recorded as missed and the
  decision says ``capped`` (beat raises a warning event, as Kubernetes does past 100).

The decision always advances to the latest due instant, so an instant is considered once:
a clock stepping backward never re-fires what already ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schedules.entry import CatchupPolicy
from schedules.trigger import Trigger

DEFAULT_CATCHUP_WINDOW_S = 24 * 3600.0  # seconds: a daily job missed overnight still runs
DEFAULT_CATCHUP_MAX = 10  # runs at most for `all`
SCAN_LIMIT = 100_000  # due instants walked at most (older ones are counted in bulk, not listed)


@dataclass(frozen=True)
class CatchupDecision:
    run: list[datetime]  # instants to dispatch now, oldest first
    missed: list[datetime] = field(default_factory=list)  # instants not run, oldest first
    capped: bool = False  # `all` had more missed instants in its window than catchup_max
    advance_to: datetime | None = None  # latest due instant: record it as considered


def decide_catchup(trigger: Trigger, *, last: datetime, now: datetime, policy: CatchupPolicy | None,
                   window_s: float | None, max_runs: int | None, on_time_s: float) -> CatchupDecision:
    """Which due instants after ``last`` (exclusive) and up to ``now`` to run, and which were missed."""
    due = _due_instants(trigger, last, now)
    if not due:
        return CatchupDecision(run=[])
    on_time_from = now - timedelta(seconds=on_time_s)
    on_time = [t for t in due if t >= on_time_from]
    missed = [t for t in due if t < on_time_from]
    window_from = now - timedelta(seconds=DEFAULT_CATCHUP_WINDOW_S if window_s is None else window_s)
    policy = policy or CatchupPolicy.LATEST
    capped = False
    if policy is CatchupPolicy.SKIP or (policy is CatchupPolicy.LATEST and on_time):
        chosen: list[datetime] = []
    elif policy is CatchupPolicy.LATEST:
        chosen = [missed[-1]] if missed[-1] >= window_from else []
    else:
        in_window = [t for t in missed if t >= window_from]
        cap = max_runs or DEFAULT_CATCHUP_MAX
        capped = len(in_window) > cap
        chosen = in_window[-cap:]
    chosen_set = set(chosen)
    return CatchupDecision(run=chosen + on_time, missed=[t for t in missed if t not in chosen_set],
                           capped=capped, advance_to=due[-1])


def _due_instants(trigger: Trigger, last: datetime, now: datetime) -> list[datetime]:
    due: list[datetime] = []
    cursor = last
    while len(due) < SCAN_LIMIT:
        nxt = trigger.next_fire_after(cursor)
        if nxt is None or nxt > now:
            return due
        due.append(nxt)
        cursor = nxt
    # A very dense entry down for very long: keep the newest SCAN_LIMIT instants only.
    return due + _due_instants(trigger, max(cursor, now - timedelta(days=1)), now)[-SCAN_LIMIT:]

"""The catch-up decision, one row per rule: the documented defaults (policy ``latest``, window 24 h,
cap 10 for ``all``; README "Catch-up after downtime") and every edge (the window's start, the
on-time boundary that ends it, exactly on time, one past the cap).

Rows leave policy, window and cap unset (None) where they pin a default, so a changed default
fails a named row. Expected instants are written out by hand, not computed by the code under test.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from schedules.catchup import decide_catchup
from schedules.entry import CatchupPolicy
from schedules.interval import IntervalTrigger

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
ON_TIME_S = 6.0  # beat's loop interval (1 s) plus its slack (5 s)
US = timedelta(microseconds=1)
DAY = timedelta(hours=24)
HOURLY = IntervalTrigger(3600)  # on every UTC hour
LATEST, SKIP, ALL = CatchupPolicy.LATEST, CatchupPolicy.SKIP, CatchupPolicy.ALL


def h(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def hours(first: int, last: int) -> list[datetime]:
    return [h(n) for n in range(first, last + 1)]


def once_at(instant: datetime) -> IntervalTrigger:
    """Fires at ``instant`` and then only a week later: one instant in any range these rows use."""
    week_s = 7 * 86400
    return IntervalTrigger(week_s, phase_s=instant.timestamp() % week_s)


# (id, trigger, last run, now, policy, window_s, max_runs, run, missed, capped)
ROWS = [
    # -- the defaults (None: the entry does not set it) ------------------------------------------
    ("default_policy_runs_only_the_latest_missed_instant",
     HOURLY, h(-5), h(0.5), None, None, None, [h(0)], hours(-4, -1), False),
    ("default_policy_lets_an_on_time_instant_supersede_every_missed_one",
     HOURLY, h(-5), h(0), None, None, None, [h(0)], hours(-4, -1), False),
    ("default_window_keeps_a_missed_instant_exactly_24h_old",
     once_at(NOW - DAY), NOW - 2 * DAY, NOW, LATEST, None, None, [NOW - DAY], [], False),
    ("default_window_drops_a_missed_instant_a_microsecond_past_24h",
     once_at(NOW - DAY - US), NOW - 2 * DAY, NOW, LATEST, None, None, [], [NOW - DAY - US], False),
    ("default_policy_and_window_together",
     once_at(NOW - DAY), NOW - 2 * DAY, NOW, None, None, None, [NOW - DAY], [], False),
    ("all_uses_the_default_window_too",
     HOURLY, h(-30), h(0.5), ALL, None, 100, hours(-23, 0), hours(-29, -24), False),
    ("default_cap_runs_ten_missed_instants",
     HOURLY, h(-10), h(0.5), ALL, None, None, hours(-9, 0), [], False),
    ("one_past_the_default_cap_drops_the_oldest_and_is_capped",
     HOURLY, h(-11), h(0.5), ALL, None, None, hours(-9, 0), [h(-10)], True),
    # -- edges -----------------------------------------------------------------------------------
    ("exactly_on_time_runs_even_under_skip",
     HOURLY, h(-1), h(0), SKIP, None, None, [h(0)], [], False),
    ("on_time_s_old_is_still_on_time_the_windows_end",
     HOURLY, h(-1), NOW + timedelta(seconds=ON_TIME_S), SKIP, None, None, [h(0)], [], False),
    ("a_microsecond_older_than_on_time_s_is_missed",
     HOURLY, h(-1), NOW + timedelta(seconds=ON_TIME_S) + US, SKIP, None, None, [], [h(0)], False),
    ("latest_runs_an_instant_exactly_at_its_windows_start",
     HOURLY, h(-3), h(0.5), LATEST, 1800, None, [h(0)], hours(-2, -1), False),
    ("latest_drops_an_instant_a_microsecond_before_its_windows_start",
     HOURLY, h(-3), h(0.5) + US, LATEST, 1800, None, [], hours(-2, 0), False),
    ("all_runs_from_exactly_its_windows_start",
     HOURLY, h(-5), h(0.5), ALL, 3 * 3600 + 1800, 100, hours(-3, 0), hours(-4, -4), False),
    ("exactly_the_cap_is_not_capped",
     HOURLY, h(-3), h(0.5), ALL, None, 3, hours(-2, 0), [], False),
    ("one_past_an_explicit_cap_is_capped",
     HOURLY, h(-4), h(0.5), ALL, None, 3, hours(-2, 0), [h(-3)], True),
    ("all_with_an_on_time_instant_runs_the_missed_first_then_it",
     HOURLY, h(-3), h(0), ALL, None, None, hours(-2, 0), [], False),
    ("skip_records_every_missed_instant",
     HOURLY, h(-3), h(0.5), SKIP, None, None, [], hours(-2, 0), False),
]


@pytest.mark.parametrize("trigger, last, now, policy, window_s, max_runs, run, missed, capped",
                         [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_catchup_decision(trigger, last, now, policy, window_s, max_runs, run, missed, capped):
    decision = decide_catchup(trigger, last=last, now=now, policy=policy, window_s=window_s, max_runs=max_runs,
                              on_time_s=ON_TIME_S)
    assert (decision.run, decision.missed, decision.capped) == (run, missed, capped)
    assert decision.advance_to == max(run + missed)  # every due instant is considered once


def test_nothing_due_decides_nothing():
    decision = decide_catchup(HOURLY, last=h(0), now=h(0.5), policy=None, window_s=None, max_runs=None,
                              on_time_s=ON_TIME_S)
    assert (decision.run, decision.missed, decision.capped, decision.advance_to) == ([], [], False, None)

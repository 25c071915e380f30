"""The GTFS-RT poll's adaptive logic: every 15 s slot at peak, every other by day, one in six at night."""
from __future__ import annotations

import pytest

from examples.transit.adaptive import poll_due, poll_mode


@pytest.mark.parametrize("hour,mode", [(7, "peak"), (9, "peak"), (10, "day"), (17, "peak"), (20, "day"),
                                       (0, "night"), (4, "night"), (5, "day")])
def test_the_mode_by_sydney_hour(hour, mode):
    assert poll_mode(hour) == mode


@pytest.mark.parametrize("mode,fetched_slots", [("peak", 240), ("day", 120), ("night", 40)])
def test_fetches_per_hour_of_15_s_slots(mode, fetched_slots):
    fetched, last_s = 0, None
    for slot in range(240):
        now_s = slot * 15
        if poll_due(mode, None if last_s is None else now_s - last_s):
            fetched, last_s = fetched + 1, now_s
    assert fetched == fetched_slots

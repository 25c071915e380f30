"""Triggers survive a JSON round trip (as beat stores them in Redis) with identical fires."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from schedules.codec import trigger_from_dict, trigger_to_dict
from schedules.cron import CronTrigger
from schedules.errors import TriggerDecodeError
from schedules.interval import IntervalTrigger
from schedules.oneoff import AtTrigger
from schedules.windows import Window, WindowsTrigger

UTC = timezone.utc
# Windows holding a DST change: Sydney springs forward on 2026-10-04, London falls back on 2026-10-25.
SYDNEY_WEEK = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 8, tzinfo=UTC))
LONDON_WEEK = (datetime(2026, 10, 22, tzinfo=UTC), datetime(2026, 10, 29, tzinfo=UTC))

TRIGGERS = {
    "interval_whole_seconds": (IntervalTrigger(600), SYDNEY_WEEK),
    "interval_fraction_and_phase": (IntervalTrigger(37.25, phase_s=3.5), SYDNEY_WEEK),
    "cron_utc": (CronTrigger("*/20 9-17 * * mon-fri"), SYDNEY_WEEK),
    "cron_sydney_default_dst": (CronTrigger("30 2 * * *", timezone="Australia/Sydney"), SYDNEY_WEEK),
    "cron_sydney_gap_skip": (CronTrigger("30 2 * * *", timezone="Australia/Sydney", gap="skip"), SYDNEY_WEEK),
    "cron_london_repeat_both": (CronTrigger("30 1 * * *", timezone="Europe/London", repeat="both"), LONDON_WEEK),
    "cron_london_wildcard": (CronTrigger("*/30 * * * *", timezone="Europe/London"), LONDON_WEEK),
    "at_aware_with_microseconds": (AtTrigger(datetime(2026, 10, 5, 1, 2, 3, 456789, tzinfo=UTC)), SYDNEY_WEEK),
    "at_local_in_gap": (AtTrigger.from_local(datetime(2026, 10, 4, 2, 30), timezone="Australia/Sydney"), SYDNEY_WEEK),
    "at_local_repeated": (AtTrigger.from_local(datetime(2026, 10, 25, 1, 30), timezone="Europe/London"), LONDON_WEEK),
    "windows_hours_days_phase": (WindowsTrigger([
        Window(120, hours=frozenset({7, 8, 9, 17, 18}), days_of_week=frozenset({1, 2, 3, 4, 5})),
        Window(300, days_of_week=frozenset({0, 6}), phase_s=30),
        Window(900),
    ], timezone="Europe/London"), LONDON_WEEK),
    "windows_sydney_single_default": (WindowsTrigger([Window(3600, phase_s=60)], timezone="Australia/Sydney"),
                                      SYDNEY_WEEK),
}


def through_json(trigger):
    return trigger_from_dict(json.loads(json.dumps(trigger_to_dict(trigger))))


@pytest.mark.parametrize("name", list(TRIGGERS))
def test_round_trip_gives_identical_fires(name):
    trigger, (start, end) = TRIGGERS[name]
    decoded = through_json(trigger)
    assert type(decoded) is type(trigger)
    fires = list(trigger.fires_between(start - timedelta(days=1), end))
    assert fires, "the window must hold fires for the comparison to mean anything"
    assert list(decoded.fires_between(start - timedelta(days=1), end)) == fires
    assert decoded == trigger
    assert decoded.describe() == trigger.describe()
    assert trigger_to_dict(decoded) == trigger_to_dict(trigger)


def test_cron_dict_keeps_zone_and_policies():
    data = trigger_to_dict(TRIGGERS["cron_sydney_gap_skip"][0])
    assert data == {"codec": 1, "kind": "cron", "cron": "30 2 * * *", "timezone": "Australia/Sydney",
                    "gap": "skip", "repeat": "first"}


def test_at_dict_keeps_where_it_came_from():
    decoded = through_json(TRIGGERS["at_local_in_gap"][0])
    assert (decoded.local_time, decoded.timezone, decoded.resolution) == (
        datetime(2026, 10, 4, 2, 30), "Australia/Sydney", "gap")
    assert decoded.at == datetime(2026, 10, 3, 16, tzinfo=UTC)  # 03:00 AEDT, the end of the gap


@pytest.mark.parametrize("data", [
    {"codec": 1, "kind": "sometimes"},
    {"codec": 2, "kind": "every", "every_s": 60},
    {"kind": "every", "every_s": 60},
    {"codec": 1, "kind": "every"},
    {"codec": 1, "kind": "cron", "cron": "61 * * * *", "timezone": "UTC"},
    {"codec": 1, "kind": "cron", "cron": "0 3 * * *", "timezone": "Nowhere/Land"},
    {"codec": 1, "kind": "windows", "timezone": "UTC", "windows": [{"every_s": 60, "hours": [7]}]},
    {"codec": 1, "kind": ["every"]},
    "every 60",
], ids=["unknown_kind", "future_codec_version", "no_codec_version", "missing_field", "bad_cron",
        "unknown_zone", "windows_without_default", "unhashable_kind", "not_a_mapping"])
def test_bad_stored_dict_is_a_decode_error(data):
    with pytest.raises(TriggerDecodeError) as caught:
        trigger_from_dict(data)
    assert caught.value.data == data

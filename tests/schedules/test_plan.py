"""The plan over Sydney's spring-forward week: exact fires, the DST table and the cost figures."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from schedules.plan import build_plan
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule

UTC = timezone.utc
NOW = datetime(2026, 9, 1, tzinfo=UTC)
# Sydney springs forward at 2026-10-04 02:00 AEST (+10:00) -> 03:00 AEDT (+11:00) = 2026-10-03T16:00Z.
SPRING_FORWARD = datetime(2026, 10, 3, 16, tzinfo=UTC)
START = datetime(2026, 10, 1, tzinfo=timezone(timedelta(hours=10)))  # 2026-09-30T14:00Z
END = datetime(2026, 10, 8, tzinfo=timezone(timedelta(hours=11)))  # 2026-10-07T13:00Z
WINDOW_H = 167  # seven local days minus the skipped hour
PRICE = 0.10

RAW = {
    "nightly": {"task": "t", "cron": "30 2 * * *", "timezone": "Australia/Sydney", "expected_runtime": "5m"},
    "nightly-skip": {"task": "t", "cron": "30 2 * * *", "timezone": "Australia/Sydney", "dst": {"gap": "skip"}},
    "poll": {"task": "t", "every": "6h"},
    "once": {"task": "t", "at": "2026-10-04T02:15", "timezone": "Australia/Sydney", "expected_runtime": 30},
    "off": {"task": "t", "every": "1h", "enabled": False},
}


@pytest.fixture(scope="module")
def plan():
    settings = ScheduleSettings(timezone="Australia/Sydney")
    schedule = validate_schedule(RAW, settings=settings, registered_tasks=None, now=NOW)
    return build_plan(schedule, start=START, end=END, cost_per_worker_hour=PRICE)


@pytest.fixture(scope="module")
def plan_json(plan):
    return json.loads(json.dumps(plan.to_json()))  # the contract is what survives JSON


def sydney_iso(utc_instant: datetime) -> str:
    """Local ISO time by hand: +10:00 before the change, +11:00 from it."""
    offset = timedelta(hours=11 if utc_instant >= SPRING_FORWARD else 10)
    return utc_instant.astimezone(timezone(offset)).isoformat()


def test_fixed_time_cron_shifts_out_of_the_gap(plan_json):
    assert plan_json["entries"]["nightly"]["fires"] == [
        "2026-10-01T02:30:00+10:00", "2026-10-02T02:30:00+10:00", "2026-10-03T02:30:00+10:00",
        "2026-10-04T03:00:00+11:00",  # 02:30 does not exist: once, as the gap ends
        "2026-10-05T02:30:00+11:00", "2026-10-06T02:30:00+11:00", "2026-10-07T02:30:00+11:00",
    ]
    assert plan_json["entries"]["nightly"]["fires_utc"][3] == "2026-10-03T16:00:00+00:00"


def test_gap_skip_drops_the_missing_day(plan_json):
    fires = plan_json["entries"]["nightly-skip"]["fires"]
    assert [f[:10] for f in fires] == ["2026-10-01", "2026-10-02", "2026-10-03", "2026-10-05", "2026-10-06",
                                       "2026-10-07"]


def test_interval_keeps_real_time_and_shows_the_local_offset(plan_json):
    first = datetime(2026, 9, 30, 18, tzinfo=UTC)  # the first 6 h epoch-grid point after 14:00Z
    expected_utc = []
    while first < END:
        expected_utc.append(first)
        first += timedelta(hours=6)
    entry = plan_json["entries"]["poll"]
    assert entry["fires_utc"] == [f.isoformat() for f in expected_utc]
    assert entry["fires"] == [sydney_iso(f) for f in expected_utc]
    assert len(expected_utc) == 28


def test_one_off_in_the_gap_fires_when_the_gap_ends(plan_json):
    assert plan_json["entries"]["once"]["fires"] == ["2026-10-04T03:00:00+11:00"]


def test_left_out_entries_have_a_reason_and_no_fires(plan_json):
    off = plan_json["entries"]["off"]
    assert (off["left_out"], off["fires"]) == ("enabled: false in the schedule", [])
    assert "off" not in plan_json["cost"]["entries"]


def test_dst_table_has_the_transition_and_each_wall_clock_entry(plan_json):
    [row] = [row for row in plan_json["dst"] if row["in_window"]]
    assert (row["timezone"], row["at_utc"], row["kind"]) == ("Australia/Sydney", SPRING_FORWARD.isoformat(), "gap")
    assert (row["offset_before_s"], row["offset_after_s"]) == (36000, 39600)
    assert {name: effect["effect"] for name, effect in row["effects"].items()} == {
        "nightly": "shifted", "nightly-skip": "skipped", "once": "shifted",  # `poll` is real time: not listed
    }
    assert row["effects"]["nightly"]["fires"] == ["2026-10-04T03:00:00+11:00"]


def expected_cost(fires: int, runtime_s: float, *, projected_fires: int | None = None,
                  projected_h: float = WINDOW_H) -> dict:
    """Runs per hour come from the window, or from whole days of a daily cron (issue 18)."""
    per_hour = (fires if projected_fires is None else projected_fires) / projected_h
    per_month = per_hour * 24 * 30
    worker_hours = per_month * runtime_s / 3600
    return {"fires_in_window": fires, "runs_per_hour": per_hour, "runs_per_day": per_hour * 24,
            "runs_per_month": per_month, "worker_hours_per_month": worker_hours,
            "cost_per_month": worker_hours * PRICE}


def test_cost_per_entry_and_total(plan_json):
    cost = plan_json["cost"]
    # the daily crons project over 7 whole days (168 h), which hold the same fires as the window
    expected = {"nightly": expected_cost(7, 300, projected_fires=7, projected_h=168),
                "nightly-skip": expected_cost(6, 1, projected_fires=6, projected_h=168),
                "poll": expected_cost(28, 1), "once": expected_cost(1, 30)}
    assert cost["window_hours"] == pytest.approx(WINDOW_H)
    assert set(cost["entries"]) == set(expected)
    for name, figures in expected.items():
        assert cost["entries"][name] == pytest.approx(figures), name
    for key in ("runs_per_month", "worker_hours_per_month", "cost_per_month"):
        assert cost["total"][key] == pytest.approx(sum(f[key] for f in expected.values()))
    # nightly: 7 runs in 7 whole days -> 30 runs a month of 5 min each = 2.5 worker-hours
    assert cost["entries"]["nightly"]["worker_hours_per_month"] == pytest.approx(7 / 168 * 720 * 300 / 3600)
    assert cost["assumed_runtime"] == ["nightly-skip", "poll"]
    assert (cost["currency"], cost["cost_per_worker_hour"], cost["default_expected_runtime_s"]) == ("USD", PRICE, 1.0)


def test_plan_refuses_an_empty_window():
    with pytest.raises(ValueError):
        build_plan({}, start=END, end=START)


@pytest.mark.parametrize("raw", [
    {"task": "t", "every": 37.5, "phase": 3},
    {"task": "t", "cron": "*/7 1-3 * * *", "timezone": "Australia/Sydney"},
    {"task": "t", "cron": "30 2 * * *", "timezone": "Australia/Sydney", "dst": {"gap": "skip"}},
    {"task": "t", "timezone": "Australia/Sydney",
     "windows": [{"hours": "1-3", "every": "7m"}, {"days": "sun", "every": "13m"}, {"every": "1h"}]},
    {"task": "t", "at": "2026-10-04T02:15", "timezone": "Australia/Sydney"},
], ids=["interval_count", "wildcard_cron_count", "fixed_cron_count", "windows_count", "at_count"])
def test_fire_count_equals_the_fires_listed(raw):
    # The count is computed without listing fires (the cost projection's fast path).
    schedule = validate_schedule({"a": raw}, settings=ScheduleSettings(), registered_tasks=None, now=NOW)
    start = START + timedelta(seconds=0.5)  # fractional bounds: fires are counted in [start, end) exactly
    entry = build_plan(schedule, start=start, end=END - timedelta(seconds=0.25)).entries["a"]
    fires = list(schedule.entries["a"].trigger.fires_between(start, END - timedelta(seconds=0.25)))
    assert fires
    assert entry.fire_count == len(fires)
    assert entry.fires == fires


@pytest.mark.parametrize(("cron", "zone"), [
    ("*/7 1-3 * * *", "UTC"), ("0 9-17 * * mon-fri", "Asia/Tokyo"), ("15 1,13 1,15 * sun", "Asia/Kolkata"),
    ("30 2 * * *", "America/Phoenix"),  # a zone without DST
], ids=["utc_wildcard_count", "tokyo_weekdays_count", "kolkata_dom_or_dow_count", "phoenix_fixed_time_count"])
def test_cron_count_without_transitions_equals_the_fires_listed(cron, zone):
    schedule = validate_schedule({"a": {"task": "t", "cron": cron, "timezone": zone}},
                                 settings=ScheduleSettings(), registered_tasks=None, now=NOW)
    start, end = START + timedelta(seconds=0.5), START + timedelta(days=40, seconds=7.25)
    entry = build_plan(schedule, start=start, end=end).entries["a"]
    assert entry.fire_count == len(list(schedule.entries["a"].trigger.fires_between(start, end))) > 0


def test_json_can_list_fewer_fires_but_always_counts_all(plan):
    entry = plan.to_json(max_fires=2)["entries"]["nightly"]
    assert entry["fires"] == ["2026-10-01T02:30:00+10:00", "2026-10-02T02:30:00+10:00"]
    assert (entry["fire_count"], entry["fires_truncated"]) == (7, True)
    assert plan.to_json()["entries"]["nightly"]["fires_truncated"] is False


def test_dst_table_adds_the_zones_next_change_of_the_other_kind_beyond_the_window(plan_json):
    """Issue 18: the window holds Sydney's spring-forward; its next fall-back is listed too, marked."""
    [beyond] = [row for row in plan_json["dst"] if not row["in_window"]]
    assert (beyond["timezone"], beyond["kind"], beyond["at_utc"]) == (
        "Australia/Sydney", "repeat", "2027-04-03T16:00:00+00:00")
    assert beyond["effects"]["nightly"]["effect"] == "unaffected"

"""The transit brief's whole schedule (examples/transit/schedule.yaml) passes check, and beat
starts on it with default settings; selecting no example registers none of it."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from examples.transit import jobs  # noqa: F401  (the tasks a worker started with the example registers)
from schedules.platform import effective_schedule
from tests.tasks.cli.test_check_contract import start_beat

ENTRIES = ("gtfs-static-pipeline", "gtfs-pipeline-resume-stalled", "gtfs-rt-poll", "alert-matcher",
           "cost-check", "usage-rollup", "storage-cleanup")


def test_the_full_schedule_passes_check_and_beat_starts_with_default_settings(app, redis_client, monkeypatch,
                                                                             tmp_path):
    """Issue 13: `expires: 2h` (= the default visibility timeout) is fine: a message redelivered
    after the visibility timeout is past its expiry and dropped."""
    from tasks import cli

    monkeypatch.setenv("BEATKEEPER_EXAMPLE", "transit")
    monkeypatch.delenv("BEATKEEPER_SCHEDULE", raising=False)
    result = CliRunner().invoke(cli.main, ["check"])
    assert result.exit_code == 0, result.output
    assert "gtfs-static-pipeline: beatkeeper.gtfs.start" in result.output
    for name in ENTRIES:
        assert f"\n{name}: " in f"\n{result.output}", name
    scheduler = start_beat(app, monkeypatch, tmp_path, None)
    assert set(ENTRIES) <= set(scheduler.specs)
    assert redis_client.exists("redbeat:gtfs-static-pipeline")


def test_the_scenarios_pass_check(monkeypatch):
    from tasks import cli

    monkeypatch.setenv("BEATKEEPER_EXAMPLE", "transit")
    for scenario in ("peak-optimised", "aggressive"):
        result = CliRunner().invoke(cli.main, ["check", "--config", f"examples/transit/scenarios/{scenario}.yaml"])
        assert result.exit_code == 0, result.output


def test_no_example_no_example_entries_and_an_unknown_one_is_one_line():
    assert not set(ENTRIES) & set(effective_schedule({}))
    from tasks import cli

    result = CliRunner().invoke(cli.main, ["check"], env={"BEATKEEPER_EXAMPLE": "trasnit"})
    assert result.exit_code == 2
    assert "BEATKEEPER_EXAMPLE='trasnit': no such example; choose one of " in result.output.strip().splitlines()[-1]


def test_plan_without_window_flags_shows_the_next_dst_changes_beyond_its_window(monkeypatch):
    """Issue 18: the default 7-day window said "no DST transitions"; now the next ones are listed."""
    from tasks import cli

    monkeypatch.setenv("BEATKEEPER_EXAMPLE", "transit")
    monkeypatch.delenv("BEATKEEPER_SCHEDULE", raising=False)
    monkeypatch.setattr("tasks.cli.plan.utc_now", lambda: datetime(2026, 12, 1, tzinfo=timezone.utc))
    out = CliRunner().invoke(cli.main, ["plan", "--fires", "0"]).output
    assert "DST changes in the window: none" in out
    beyond = out[out.index("next DST changes, after the window (BEYOND THE WINDOW):"):]
    assert "2027-04-03T16:00:00Z Australia/Sydney repeat +11:00 -> +10:00" in beyond
    assert ("storage-cleanup: shifted: 02:00 does not exist on 2027-10-03; fires once at 03:00 AEDT "
            "(2027-10-02T16:00:00Z)") in beyond


def test_plan_compare_gives_each_schedules_totals(monkeypatch):
    from tasks import cli

    monkeypatch.setenv("BEATKEEPER_EXAMPLE", "transit")
    result = CliRunner().invoke(cli.main, [
        "plan", "--config", "examples/transit/schedule.yaml", "--compare", "examples/transit/scenarios/aggressive.yaml",
        "--start", "2026-12-07T00:00:00Z", "--days", "1", "--json", "--fires", "0"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    current, aggressive = plan["compare"]
    assert (current["schedule"], aggressive["schedule"]) == ("schedule", "aggressive")
    # the Sunday cleanup projects 1/7 a day even in a 1-day window (a Monday) with no Sunday in it
    cleanup = plan["cost"]["entries"]["storage-cleanup"]
    assert (cleanup["fires_in_window"], cleanup["runs_per_day"]) == (0, pytest.approx(1 / 7))
    assert aggressive["total"]["runs_per_hour"] - current["total"]["runs_per_hour"] == pytest.approx(360 - 240 + 60 - 16.5)

"""The transit brief's whole schedule (examples/transit/schedule.yaml) passes check, and beat
starts on it with default settings; selecting no example registers none of it."""
from __future__ import annotations

from click.testing import CliRunner

from examples.transit import jobs  # noqa: F401  (the tasks a worker started with the example registers)
from schedules.platform import effective_schedule
from tests.tasks.test_check_contract import start_beat

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

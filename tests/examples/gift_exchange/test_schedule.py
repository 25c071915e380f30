"""The gift exchange's schedule (examples/gift_exchange/schedule.yaml) passes check with the example
selected, and beat starts on it with default settings. Seed 003."""
from __future__ import annotations

from click.testing import CliRunner

from tests.tasks.cli.test_check_contract import start_beat

ENTRIES = {"gift-auto-complete": "gift_exchange.auto_complete, cron '0 0 * * *' UTC",
           "gift-purge": "gift_exchange.purge, cron '0 2 * * *' UTC",
           "gift-token-cleanup": "gift_exchange.cleanup_tokens, every 1h",
           "gift-session-cleanup": "gift_exchange.cleanup_sessions, cron '0 3 * * *' UTC",
           "gift-rate-limit-cleanup": "gift_exchange.cleanup_rate_limits, cron '0 4 * * *' UTC"}


def test_the_schedule_passes_check_and_beat_starts_on_it(app, redis_client, monkeypatch, tmp_path):
    from tasks import cli

    monkeypatch.setenv("BEATKEEPER_EXAMPLE", "gift_exchange")
    monkeypatch.delenv("BEATKEEPER_SCHEDULE", raising=False)
    result = CliRunner().invoke(cli.main, ["check"])
    assert result.exit_code == 0, result.output
    for name, line in ENTRIES.items():
        assert f"\n{name}: {line}; next " in f"\n{result.output}", name
    assert "0 warnings" in result.output.splitlines()[-1]
    scheduler = start_beat(app, monkeypatch, tmp_path, None)
    assert set(ENTRIES) <= set(scheduler.specs)
    assert all(redis_client.exists(f"redbeat:{name}") for name in ENTRIES)

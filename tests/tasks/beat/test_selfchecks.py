"""Beat's start-up self-checks, against a real redis-server's configuration (restored after)."""
from __future__ import annotations

import pytest

from schedules.errors import SettingsError
from tasks.beat.selfchecks import check_beat_timing, check_eviction_policy, eviction_check_mode


@pytest.fixture
def redis_config(redis_client):
    """CONFIG SET on the session's server, put back as it was afterwards."""
    saved = redis_client.config_get("maxmemory*")

    def set_config(policy: str, maxmemory: str) -> None:
        redis_client.config_set("maxmemory-policy", policy)
        redis_client.config_set("maxmemory", maxmemory)

    yield set_config
    redis_client.config_set("maxmemory-policy", saved["maxmemory-policy"])
    redis_client.config_set("maxmemory", saved["maxmemory"])


@pytest.mark.parametrize("policy, maxmemory, fatal, says", [
    ("noeviction", "100mb", None, None),
    ("allkeys-lru", "0", True, "evict the schedule and locks"),
    ("allkeys-random", "100mb", True, "evict the schedule and locks"),
    ("volatile-ttl", "100mb", True, "evict locks and run claims (they carry TTLs)"),
    ("volatile-lru", "0", False, "nothing is evicted now, but a memory limit would evict"),
])
def test_the_eviction_policy_check(redis_client, redis_config, policy, maxmemory, fatal, says):
    redis_config(policy, maxmemory)
    findings = check_eviction_policy(redis_client)
    if fatal is None:
        assert findings == []
        return
    [finding] = findings
    assert finding.fatal is fatal and says in finding.message
    assert f"maxmemory-policy is '{policy}'" in finding.message and "set `maxmemory-policy noeviction`" in finding.message


def test_the_lock_timeout_must_cover_five_loop_intervals():
    assert check_beat_timing(lock_timeout_s=30, loop_interval_s=5) == []
    [finding] = check_beat_timing(lock_timeout_s=20, loop_interval_s=5)
    assert finding.fatal and "BEATKEEPER_BEAT_LOCK_TIMEOUT" in finding.message



@pytest.mark.parametrize("mode, fatal", [("", True), ("error", True), ("warn", False)])
def test_a_readable_wrong_policy_stops_beat_unless_the_check_is_set_to_warn(redis_client, redis_config, mode, fatal):
    redis_config("allkeys-lru", "100mb")
    [finding] = check_eviction_policy(redis_client, mode)
    assert finding.fatal is fatal and "maxmemory-policy is 'allkeys-lru'" in finding.message


def test_the_eviction_check_off_reads_nothing(redis_client, redis_config):
    redis_config("allkeys-lru", "100mb")
    assert check_eviction_policy(redis_client, "off") == []


class SilentConfig:
    """Redis Cloud / Enterprise: CONFIG GET answers with nothing (the outside world, stood in for)."""

    def __init__(self, answer: dict):
        self.answer = answer

    def config_get(self, pattern: str) -> dict:
        return self.answer


@pytest.mark.parametrize("answer", [{}, {"maxmemory-policy": "", "maxmemory": ""}])
@pytest.mark.parametrize("mode, findings, fatal", [("", 1, False), ("warn", 1, False), ("error", 1, True),
                                                   ("off", 0, None)])
def test_a_policy_that_cannot_be_read_warns_unless_the_check_is_strict(answer, mode, findings, fatal):
    result = check_eviction_policy(SilentConfig(answer), mode)
    assert len(result) == findings
    if result:
        assert result[0].fatal is fatal
        assert "CONFIG GET answers nothing" in result[0].message
        assert "maxmemory-policy to noeviction in the provider's console" in result[0].message


def test_the_eviction_check_mode_comes_from_the_environment():
    assert eviction_check_mode({}) == ""
    assert eviction_check_mode({"BEATKEEPER_EVICTION_CHECK": " Warn "}) == "warn"
    with pytest.raises(SettingsError, match="BEATKEEPER_EVICTION_CHECK='loud': must be one of error, warn, off"):
        eviction_check_mode({"BEATKEEPER_EVICTION_CHECK": "loud"})

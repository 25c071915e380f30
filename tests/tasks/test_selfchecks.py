"""Beat's start-up self-checks, against a real redis-server's configuration (restored after)."""
from __future__ import annotations

import pytest

from tasks.selfchecks import check_beat_timing, check_eviction_policy


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


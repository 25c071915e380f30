"""Start-up self-checks: each returns findings that say what is wrong and what to set.

Beat runs them at start (a fatal finding stops it, non-zero); workers log them. What the
schedule and the settings alone decide (lock TTLs and ``expires`` against the broker's
visibility timeout, beat's lock timing) is refused by validation first, ``beatkeeper check``
included (``tasks.schedule_source``), with the same lines.
"""
from __future__ import annotations

from dataclasses import dataclass
import redis

VOLATILE_POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")
MIN_LOCK_TO_LOOP_RATIO = 5  # a live beat renews its lock at least this many times per lock timeout


@dataclass(frozen=True)
class Finding:
    check: str
    message: str
    fatal: bool


def check_eviction_policy(client: redis.Redis) -> list[Finding]:
    """The schedule and the queues carry no TTL, but locks, leases and run claims do: ``allkeys-*``
    may evict any of them, ``volatile-*`` evicts exactly those (a lost lock lets runs overlap)
    once ``maxmemory`` is reached. Only ``noeviction`` is safe with a memory limit."""
    config = client.config_get("maxmemory*")
    policy, maxmemory = config.get("maxmemory-policy", ""), int(config.get("maxmemory", 0) or 0)
    if policy == "noeviction":
        return []
    fix = "set `maxmemory-policy noeviction` (redis.conf or CONFIG SET)"
    if policy in VOLATILE_POLICIES and not maxmemory:
        return [Finding("redis-eviction", f"Redis maxmemory-policy is '{policy}' with no maxmemory: nothing is "
                        f"evicted now, but a memory limit would evict beatkeeper's locks and run claims; {fix}",
                        False)]
    evicts = "locks and run claims (they carry TTLs)" if policy in VOLATILE_POLICIES else "the schedule and locks"
    return [Finding("redis-eviction", f"Redis maxmemory-policy is '{policy}': it can silently evict {evicts}; "
                    f"{fix}", True)]


def check_beat_timing(*, lock_timeout_s: float, loop_interval_s: float) -> list[Finding]:
    if lock_timeout_s >= MIN_LOCK_TO_LOOP_RATIO * loop_interval_s:
        return []
    return [Finding("beat-lock-timeout", f"redbeat_lock_timeout {lock_timeout_s:g}s is below "
                    f"{MIN_LOCK_TO_LOOP_RATIO} x beat_max_loop_interval ({loop_interval_s:g}s): a busy beat would lose "
                    "its lock; raise BEATKEEPER_BEAT_LOCK_TIMEOUT or lower BEATKEEPER_LOOP_INTERVAL", True)]


def report(findings: list[Finding], log) -> bool:
    """Log each finding; True when none is fatal."""
    for finding in findings:
        (log.critical if finding.fatal else log.warning)("self-check %s: %s", finding.check, finding.message)
    return not any(f.fatal for f in findings)

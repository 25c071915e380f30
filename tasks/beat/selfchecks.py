"""Start-up self-checks: each returns findings that say what is wrong and what to set.

Beat runs them at start (a fatal finding stops it, non-zero); workers log them. What the
schedule and the settings alone decide (lock TTLs and ``expires`` against the broker's
visibility timeout, beat's lock timing) is refused by validation first, ``beatkeeper check``
included (``tasks.beat.schedule_source``), with the same lines.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from schedules.errors import SettingsError

VOLATILE_POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")
MIN_LOCK_TO_LOOP_RATIO = 5  # a live beat renews its lock at least this many times per lock timeout


@dataclass(frozen=True)
class Finding:
    check: str
    message: str
    fatal: bool


EVICTION_CHECK_MODES = ("error", "warn", "off")
CONSOLE_FIX = ("set maxmemory-policy to noeviction in the provider's console or parameter group (or volatile-* "
               "with no memory limit)")


class EvictionCheckSettingError(SettingsError):
    """BEATKEEPER_EVICTION_CHECK is none of its modes."""


def eviction_check_mode(environ: Mapping[str, str]) -> str:
    """BEATKEEPER_EVICTION_CHECK: ``error`` (a wrong or unreadable policy stops beat), ``warn`` (never
    stops it), ``off``; unset (""): a readable wrong policy stops beat, an unreadable one warns.
    The app's loader calls it at start, so beat, workers and ``beatkeeper check`` refuse a bad value alike."""
    mode = (environ.get("BEATKEEPER_EVICTION_CHECK") or "").strip().lower()
    if mode not in ("", *EVICTION_CHECK_MODES):
        raise EvictionCheckSettingError("BEATKEEPER_EVICTION_CHECK", mode,
                                        f"must be one of {', '.join(EVICTION_CHECK_MODES)}")
    return mode


def check_eviction_policy(client: redis.Redis, mode: str = "") -> list[Finding]:
    """The schedule and the queues carry no TTL, but locks, leases and run claims do: ``allkeys-*``
    may evict any of them, ``volatile-*`` evicts exactly those (a lost lock lets runs overlap)
    once ``maxmemory`` is reached. Only ``noeviction`` is safe with a memory limit.
    ``mode`` is ``eviction_check_mode``'s value."""
    if mode == "off":
        return []
    try:
        config = client.config_get("maxmemory*")
    except redis.ResponseError as exc:  # managed Redis (ElastiCache, MemoryDB) refuses CONFIG
        config, refused = {}, str(exc).strip().splitlines()[0]
    else:
        refused = ""
    if not config.get("maxmemory-policy"):  # refused, or answered with nothing (Redis Cloud/Enterprise)
        why = f"CONFIG GET is refused ({refused})" if refused else "CONFIG GET answers nothing"
        return [Finding("redis-eviction", f"cannot read Redis maxmemory-policy: {why}, as on managed Redis; "
                        f"{CONSOLE_FIX}; BEATKEEPER_EVICTION_CHECK=off silences this", mode == "error")]
    policy, maxmemory = config["maxmemory-policy"], int(config.get("maxmemory", 0) or 0)
    if policy == "noeviction":
        return []
    fix = "set `maxmemory-policy noeviction` (redis.conf or CONFIG SET)"
    if policy in VOLATILE_POLICIES and not maxmemory:
        return [Finding("redis-eviction", f"Redis maxmemory-policy is '{policy}' with no maxmemory: nothing is "
                        f"evicted now, but a memory limit would evict beatkeeper's locks and run claims; {fix}",
                        False)]
    evicts = "locks and run claims (they carry TTLs)" if policy in VOLATILE_POLICIES else "the schedule and locks"
    return [Finding("redis-eviction", f"Redis maxmemory-policy is '{policy}': it can silently evict {evicts}; "
                    f"{fix}", mode != "warn")]


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


def refuse_to_start(lines: list[str], *, why: str = "an invalid schedule (see `beatkeeper check`)") -> None:
    """Stop beat at start with one line per problem and a non-zero exit (no traceback)."""
    for line in lines:
        logging.getLogger("beatkeeper.beat").error("beat: %s", line)
        print(line, file=sys.stderr)
    print(f"beat: refusing to start with {why}", file=sys.stderr)
    raise SystemExit(1)

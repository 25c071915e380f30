"""The dynamic entries as :class:`EntrySpec` values, for what judges and shows the schedule:
``beatkeeper status``, ``plan``, the monitor's rules (missed runs), the dashboard.

Their specs are validated again here as beat validates the file, with no task or budget check
(``put`` made them); equal stored texts are turned into specs once per process.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime

import redis

from schedules.entry import EntrySpec
from schedules.errors import BeatkeeperScheduleError
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule
from tasks.dynamic.entries import ENTRIES_KEY, StoredEntry

logger = logging.getLogger("beatkeeper.dynamic")

_KEPT = 200_000  # (name, stored text) -> spec kept per process
_SPECS: dict[tuple[str, str], EntrySpec] = {}


def dynamic_specs(client: redis.Redis, now: datetime, *,
                  environ: Mapping[str, str] = os.environ) -> dict[str, EntrySpec]:
    """name -> spec of every dynamic entry (one read); one that no longer validates (a setting
    changed since it was stored) is left out with a warning."""
    stored = {str(n): str(t) for n, t in client.hgetall(ENTRIES_KEY).items()}
    fresh = {name: text for name, text in stored.items() if (name, text) not in _SPECS}
    if fresh:
        if len(_SPECS) + len(fresh) > _KEPT:
            _SPECS.clear()
            fresh = stored
        _SPECS.update(_validated(fresh, now, environ))
    return {name: _SPECS[(name, text)] for name, text in sorted(stored.items()) if (name, text) in _SPECS}


def short_redis(url: str, *, timeout_s: float = 2.0) -> redis.Redis:
    """A client that gives up at once (no retry): what shows the schedule must not wait for Redis."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tasks.infra.redis_tls import client_ssl_kwargs

    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 0), **client_ssl_kwargs(url))


def readable_dynamic_specs(client: redis.Redis, now: datetime) -> dict[str, EntrySpec]:
    """:func:`dynamic_specs`, or none, with one warning, when Redis cannot be read (what shows the
    schedule still shows the file's entries)."""
    try:
        return dynamic_specs(client, now)
    except redis.RedisError as exc:
        logger.debug("dynamic entries not read (%s)", exc)  # the caller reports Redis being away
        return {}


def spec_of(name: str, text: str, now: datetime, *, environ: Mapping[str, str] = os.environ) -> EntrySpec | None:
    """The spec of one stored dynamic entry; None if it no longer validates."""
    found = _SPECS.get((name, text))
    if found is None:
        found = _validated({name: text}, now, environ).get((name, text))
    return found


def _validated(texts: Mapping[str, str], now: datetime, environ: Mapping[str, str]) -> dict[tuple[str, str], EntrySpec]:
    """All at once (equal timings are judged once), else one by one to leave out the invalid."""
    settings = ScheduleSettings.from_env(environ)
    raw = {name: StoredEntry.from_json(text).spec for name, text in texts.items()}
    try:
        entries = validate_schedule(raw, settings=settings, registered_tasks=None, now=now, judge_budget=False).entries
        return {(name, texts[name]): spec for name, spec in entries.items()}
    except BeatkeeperScheduleError:
        pass
    found = {}
    for name, spec in raw.items():
        try:
            entries = validate_schedule({name: spec}, settings=settings, registered_tasks=None, now=now,
                                        judge_budget=False).entries
        except BeatkeeperScheduleError as exc:
            logger.warning("dynamic entry %s no longer validates (%s); left out", name, exc)
            continue
        found[(name, texts[name])] = entries[name]
    return found


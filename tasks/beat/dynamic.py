"""What beat does for dynamic entries (``tasks.dynamic.entries``).

Beat keeps no copy of them: they are redbeat entries like the file's, found by the same tick
read. Only when one is due does beat read its stored spec (one round trip for all those due),
turned into an :class:`EntrySpec` once per stored text, for its catch-up policy and, for an
``at`` entry, its removal once dispatched.
"""
from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import datetime

import redis

from schedules.entry import EntrySpec, ScheduleKind
from tasks.dynamic.entries import (ENTRIES_KEY, NAMES_KEY, POLICIES_KEY, RETIRED_POLICIES_KEY, RETIRED_POLICY_KEEP_S,
                                   StoredEntry, delete_commands, forget_commands)
from tasks.dynamic.specs import spec_of
from tasks.policy import PUBLISHED_ENTRY_POLICIES_KEY

logger = logging.getLogger("beatkeeper.beat")

SPECS_KEPT = 100_000  # stored texts -> specs kept in memory


class DynamicSpecs:
    """The specs of the dynamic entries beat met due, by name."""

    def __init__(self) -> None:
        self._by_text: dict[str, tuple[StoredEntry, EntrySpec | None]] = {}
        self._by_name: dict[str, tuple[StoredEntry, EntrySpec | None]] = {}

    def load(self, client: redis.Redis, names: list[str], now: datetime) -> set[str]:
        """Read the stored specs of ``names``; the names that are dynamic entries."""
        if not names:
            return set()
        found = set()
        for name, text in zip(names, client.hmget(ENTRIES_KEY, names)):
            if text is None:
                self._by_name.pop(name, None)
                continue
            if text not in self._by_text:
                if len(self._by_text) >= SPECS_KEPT:
                    self._by_text.clear()
                record = StoredEntry.from_json(text)
                self._by_text[text] = (record, spec_of(name, text, now))
            self._by_name[name] = self._by_text[text]
            found.add(name)
        return found

    def spec(self, name: str) -> EntrySpec | None:
        found = self._by_name.get(name)
        return None if found is None else found[1]

    def is_dynamic(self, name: str) -> bool:
        return name in self._by_name

    def remove_when_done(self, records, name: str, *, key_prefix: str, schedule_key: str, now_ts: float) -> bool:
        """Queue the removal of a dynamic ``at`` entry whose instant is behind it; True when queued."""
        found = self._by_name.pop(name, None)
        if found is None or found[0].kind != ScheduleKind.AT.value:
            return False
        record = found[0]
        delete_commands(records, name, record.task, record.peak, key_prefix=key_prefix, schedule_key=schedule_key,
                        retire_policy_at=now_ts + RETIRED_POLICY_KEEP_S)
        logger.info("beat: one-off dynamic entry %s dispatched; removed", name)
        return True


def dynamic_keys(client: redis.Redis, key_prefix: str) -> set[str]:
    """The redbeat keys of every dynamic entry."""
    return {key_prefix + n for n in client.zrange(NAMES_KEY, 0, -1)}


# Atomic against a put that takes the name again (it leaves the retired set in its MULTI).
_EXPIRE_RETIRED = """
local names = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, name in ipairs(names) do
  redis.call('HDEL', KEYS[2], name)
  redis.call('HDEL', KEYS[3], name)
  redis.call('ZREM', KEYS[1], name)
end
return #names
"""


def expire_retired_policies(client: redis.Redis, now_ts: float, *, batch: int = 1000) -> int:
    """Unpublish the policies of one-offs dispatched ``RETIRED_POLICY_KEEP_S`` ago; how many."""
    return int(client.eval(_EXPIRE_RETIRED, 3, RETIRED_POLICIES_KEY, PUBLISHED_ENTRY_POLICIES_KEY, POLICIES_KEY,
                           now_ts, batch))


def republish_policies(client: redis.Redis, file_names: Collection[str]) -> int:
    """At beat's start, after the file's policies were published (which replaces them all):
    publish again the dynamic entries' that set one; forget a dynamic entry the file now names
    (the file's entry wins, under that name). How many were published."""
    names = list(file_names)
    shadowed = [n for n, score in zip(names, client.zmscore(NAMES_KEY, names) if names else []) if score is not None]
    with client.pipeline(transaction=False) as pipe:
        for name, text in zip(shadowed, client.hmget(ENTRIES_KEY, shadowed) if shadowed else []):
            logger.warning("beat: dynamic entry %s is now a schedule file entry; the file's is kept", name)
            if text is not None:
                record = StoredEntry.from_json(text)
                forget_commands(pipe, name, record.task, record.peak)
        published = {str(n): p for n, p in client.hgetall(POLICIES_KEY).items() if str(n) not in file_names}
        for chunk in _chunks(list(published.items()), 10_000):
            pipe.hset(PUBLISHED_ENTRY_POLICIES_KEY, mapping=dict(chunk))
        pipe.execute()
    return len(published)



def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

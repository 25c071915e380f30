"""Dynamic entries with a real beat and a real worker: 1,000 one-offs added while beat runs all
fire at their instants, once each (a ledger counts executions); 100 replaced ones never fire at
their old instants; entries removed by prefix fire no instant after their removal; entries survive
a beat restart. Short instants on the wall clock; every wait bounded."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from tasks.dynamic_entries import DynamicEntries
from tests.beat import ledger_tasks as lt
from tests.process.test_beat_faults import executed, platform_env, start_beat, start_worker, wait_drained
from tests.servers import wait_until

pytestmark = pytest.mark.process

ONE_OFFS = 1000
REPLACED = 100  # of the one-offs, the first ones
REMOVED = 50  # repeating entries removed by prefix
SURVIVORS = 50  # one-offs due after the beat restart
SPREAD_S = 10  # the one-offs' instants spread over this many seconds
SCHEDULE = {"file-tick": {"task": lt.record.name, "every": 5}}


def _at(moment: datetime) -> dict:
    return {"task": lt.record.name, "at": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timezone": "UTC"}


def _second(after_s: float) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(seconds=after_s)).replace(microsecond=0)


def test_dynamic_entries_fire_once_at_their_instants_replace_remove_and_survive_restart(
        app, processes, redis_client, tmp_path, monkeypatch):
    env = platform_env(tmp_path, SCHEDULE)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    entries = DynamicEntries.for_app(app)
    start_worker(processes, env, "w1", concurrency=4)
    beat = start_beat(processes, env, "beat-1")
    wait_until(lambda: redis_client.get("redbeat::lock"), timeout_s=60, what="beat to hold its lock")

    # 1,000 one-offs added while beat runs, and repeating entries to remove later
    first = _second(15)
    planned = {f"load:{i:04d}": first + timedelta(seconds=i % SPREAD_S) for i in range(ONE_OFFS)}
    for name, at in planned.items():
        entries.put(name, _at(at))
    for i in range(REMOVED):
        entries.put(f"gone:{i:02d}", {"task": lt.record.name, "every": 2})
    # 100 replaced before their old instant: they move 20 s later
    assert datetime.now(timezone.utc) < first, "adding took longer than the lead time"
    old = {name: planned[name] for name in list(planned)[:REPLACED]}
    for name in old:
        planned[name] = old[name] + timedelta(seconds=20)
        entries.put(name, _at(planned[name]))

    # the removed ones ran a few times; after removal, no later instant of theirs runs
    wait_until(lambda: len(executed(redis_client).get("gone:00", {})) >= 2, timeout_s=60, what="gone:00 to run")
    assert entries.remove_prefix("gone:") == REMOVED
    removed_at = datetime.now(timezone.utc)

    last = max(planned.values())
    wait_until(lambda: sum(len(v) for k, v in executed(redis_client).items() if k.startswith("load:")) >= ONE_OFFS,
               timeout_s=(last - datetime.now(timezone.utc)).total_seconds() + 60, interval_s=0.5,
               what="every one-off to run")
    wait_drained(redis_client)
    ran = executed(redis_client)
    for name, at in planned.items():
        assert ran.get(name) == {at: 1}, name  # its instant, once; never a replaced one's old instant
    assert all(i <= removed_at for i in range(REMOVED) for i in ran.get(f"gone:{i:02d}", {}))
    for i in range(REMOVED):
        late = [t for t in ran.get(f"gone:{i:02d}", {}) if t > removed_at]
        assert not late, f"gone:{i:02d} ran after its removal at {late}"
        assert all(count == 1 for count in ran.get(f"gone:{i:02d}", {}).values())
    assert entries.names("load:") == []  # one-offs leave once dispatched
    assert not redis_client.exists("redbeat:load:0000")

    # beat restarts: entries added before survive it and fire once
    after = _second(12)
    survivors = {f"keep:{i:02d}": after + timedelta(seconds=i % 3) for i in range(SURVIVORS)}
    for name, at in survivors.items():
        entries.put(name, _at(at))
    entries.put("keep:every", {"task": lt.record.name, "every": 2})
    beat.terminate()
    assert beat.wait(timeout=30) is not None
    start_beat(processes, env, "beat-2")
    assert entries.names("keep:") == sorted([*survivors, "keep:every"])
    wait_until(lambda: all(name in executed(redis_client) for name in survivors), timeout_s=60, interval_s=0.5,
               what="the survivors to run after the restart")
    restarted_at = datetime.now(timezone.utc)
    wait_until(lambda: any(t > restarted_at for t in executed(redis_client).get("keep:every", {})),
               timeout_s=30, what="the repeating entry to keep firing after the restart")
    wait_drained(redis_client)
    ran = executed(redis_client)
    for name, at in survivors.items():
        assert ran[name] == {at: 1}, name
    assert all(count == 1 for count in ran["keep:every"].values())
    assert not [name for name in ran if name.startswith("gone:") and any(t > removed_at for t in ran[name])]
    entries.remove_prefix("")
    time.sleep(0)  # (nothing to wait for: the processes fixture stops beat and worker by pid)

"""Dynamic entries with a real beat and a real worker: 1,000 one-offs added while beat runs all
fire at their instants, once each (a ledger counts executions); 100 replaced ones never fire at
their old instants; entries removed by prefix fire no instant after their removal; entries survive
a beat restart. Short instants on the wall clock; every wait bounded."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tasks.dynamic_entries import DynamicEntries
from tests.beat import ledger_tasks as lt
from tests.process.test_beat_faults import executed, platform_env, start_beat, wait_drained
from tests.servers import wait_until

pytestmark = pytest.mark.process

ONE_OFFS = 1000
REPLACED = 100  # of the one-offs, the first ones
REMOVED = 20  # repeating entries removed by prefix
SURVIVORS = 50  # one-offs due after the beat restart
CHUNK = 100  # one-offs added at a time
LEAD_S = 6  # seconds from a chunk's start to its first instant
SPREAD_S = 4  # a chunk's instants spread over this many seconds
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
    worker = processes.celery("worker", "-n", "w1@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                              "--loglevel", "INFO", "-P", "threads", "-c", "8", "-Q", "default", name="w1", env=env)
    wait_until(lambda: b" ready." in worker.log_path.read_bytes(), timeout_s=60, what="the worker ready")
    beat = start_beat(processes, env, "beat-1")
    wait_until(lambda: redis_client.get("redbeat::lock"), timeout_s=60, what="beat to hold its lock")

    # 1,000 one-offs added while beat runs, in chunks, each due a few seconds after it is added
    # (beat dispatches the earlier chunks meanwhile); of each chunk, the first tenth is replaced
    # before its instant comes, by one 3 s later
    for i in range(REMOVED):
        entries.put(f"gone:{i:02d}", {"task": lt.record.name, "every": 5})
    planned: dict[str, datetime] = {}
    old: dict[str, datetime] = {}
    for chunk in range(ONE_OFFS // CHUNK):
        base = _second(LEAD_S)
        names = [f"load:{chunk * CHUNK + i:04d}" for i in range(CHUNK)]
        for i, name in enumerate(names):
            planned[name] = base + timedelta(seconds=i % SPREAD_S)
            entries.put(name, _at(planned[name]))
        for name in names[:CHUNK * REPLACED // ONE_OFFS]:
            old[name] = planned[name]
            planned[name] = old[name] + timedelta(seconds=3)
            entries.put(name, _at(planned[name]))
        assert datetime.now(timezone.utc) < base, "adding a chunk took longer than its lead time"
    assert len(planned) == ONE_OFFS and len(old) == REPLACED

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
    after = _second(8)
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

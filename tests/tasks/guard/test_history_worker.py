"""Every run on record, on a real worker: the history holds exactly the expected rows, on SQLite
and on a real Postgres; a database that goes down mid-run loses nothing and duplicates nothing."""
from __future__ import annotations

import inspect
import json
import logging
import socket
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from monitoring.db import engine_for, make_engine
from monitoring.history import HistoryStore, RunRecord
from tasks import headers
from tasks.cli import main
from tasks.guard import standard_middlewares
from tests.app_wiring import set_history_store
from tasks.locks.fenced import FencedLock
from tasks.builtin import purge_history, purge_older_than
from tests.app_wiring import set_middlewares
from tasks.guard.pause import PauseStore
from tasks.policy import declared_fields, lock_key_for, resolve_policy
from tasks.infra.redis_client import app_redis
from tests.monitoring.databases import (app_history, app_history_on, drained_records,  # noqa: F401
                                        fresh_postgres_database, history_url, postgres_db_url, postgres_url,
                                        sqlite_url, upgraded)
from tests.postgres import PostgresServer, require_postgres_bin_dir
from tests.servers import free_port, wait_until
from tests.tasks import history_tasks as ht


def ended(result, timeout_s: float = 30):
    wait_until(lambda: result.state not in ("PENDING", "STARTED", "RETRY"), timeout_s=timeout_s,
               what=f"task {result.id} to end")
    return result


def lock_key_of(task, *args) -> str:
    policy = resolve_policy(task.name, declared_fields(task), max_lock_ttl_s=3600)
    return lock_key_for(task.name, policy, signature=inspect.signature(task.run), args=args, kwargs={})


def test_a_real_worker_records_every_kind_of_run(app_history_on, worker, redis_client):
    store = app_history_on
    ok = ended(ht.ok.delay("k"))
    failed = ended(ht.fail.delay("f"))
    flaky = ended(ht.flaky.delay("r", 2))
    redis_client.set(ht.block_key("o"), 1, ex=60)
    holder = ht.blocker.delay("o")
    wait_until(lambda: redis_client.get("hist:o:entered"), timeout_s=10, what="the blocker to start")
    overlapped = ended(ht.blocker.delay("o"))
    redis_client.delete(ht.block_key("o"))
    ended(holder)
    PauseStore(redis_client).pause("paused-entry", now=time.time(), reason="pricing lock")
    paused = ended(ht.ok.apply_async(("k",), headers=headers.dispatch_headers("paused-entry",
                                                                                 datetime.now(timezone.utc))))
    budget = [ended(ht.small_budget.delay("b")) for _ in range(3)]
    expired = ht.ok.apply_async(("k",), expires=datetime(2000, 1, 1, tzinfo=timezone.utc))

    records = drained_records(store, expected=12)
    # Every message taken and acknowledged (a run's record is spooled before its ack): a duplicate
    # record would be in the spool now.
    wait_until(lambda: not any(redis_client.llen(q) for q in ("default", "singleton")) and
               not redis_client.hlen("unacked"), timeout_s=30, what="every message acknowledged")
    store.drain()
    assert store.count() == 12
    by_id: dict[str, list[RunRecord]] = {}
    for record in sorted(records, key=lambda r: (r.finished_at, r.attempt)):
        by_id.setdefault(record.task_id, []).append(record)

    assert [r.status for r in by_id[ok.id]] == ["success"]
    [failure] = by_id[failed.id]
    assert (failure.status, failure.error_type, failure.error_message) == ("failure", "ValueError", "boom f")
    assert [(r.status, r.attempt) for r in by_id[flaky.id]] == [("retry", 0), ("retry", 1), ("success", 2)]
    assert [r.error_type for r in by_id[flaky.id]] == ["Retry", "Retry", None]
    assert "flaky r attempt 1" in by_id[flaky.id][0].error_message
    assert "flaky r attempt 2" in by_id[flaky.id][1].error_message
    [skipped] = by_id[overlapped.id]
    assert skipped.status == "skipped_overlap" and "still holds the lock" in skipped.reason
    assert [r.status for r in by_id[holder.id]] == ["success"] and by_id[holder.id][0].fencing_token >= 1
    [pause] = by_id[paused.id]
    assert (pause.status, pause.entry) == ("skipped_paused", "paused-entry") and "pricing lock" in pause.reason
    assert sorted(by_id[r.id][0].status for r in budget) == ["skipped_budget", "success", "success"]
    assert [r.status for r in by_id[expired.id]] == ["expired"]
    assert int(redis_client.get(ht.ran_key("k"))) == 1 and int(redis_client.get(ht.ran_key("b"))) == 2
    # Celery gives a run its worker's node name or its machine's host name, depending on the pool path.
    assert {r.hostname for r in records} <= {worker.hostname, socket.gethostname()}


def test_history_accepts_every_status_a_run_can_end_with():
    from monitoring.history import RUN_STATUSES
    from tasks.guard.run import RunStatus

    assert set(RUN_STATUSES) == {status.value for status in RunStatus}


def test_a_run_whose_status_history_refuses_still_counts_in_the_metrics(app_history, redis_client, monkeypatch):
    from monitoring.metrics import metrics_registry

    monkeypatch.setattr("monitoring.history.RUN_STATUSES", ("failure",))  # as if "success" were a new status
    assert ht.ok.apply(args=("x",)).state == "SUCCESS"
    counted = metrics_registry(redis_client).get_sample_value(
        "beatkeeper_schedule_runs_total", {"entry": "", "name": "tests.history.ok", "status": "success"})
    assert counted == 1 and app_history.pending_count() == 0


def test_each_run_records_its_instants_and_lateness(app_history, worker):
    fire_at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=5)
    result = ended(ht.ok.apply_async(("late",), headers=headers.dispatch_headers("sync-feeds", fire_at)))
    [record] = drained_records(app_history, expected=1)
    assert (record.task_id, record.entry, record.fire_at) == (result.id, "sync-feeds", fire_at)
    assert record.received_at <= record.started_at <= record.finished_at
    assert 5 <= record.lateness_s < 15
    assert record.lateness_s == (record.started_at - fire_at).total_seconds()


def test_a_lost_run_is_recorded_with_its_own_task_id(app, app_history):
    key = lock_key_of(ht.blocker, "crashy")
    dead = FencedLock(app_redis(app), key, ttl_s=30,
                      holder={"task": ht.blocker.name, "task_id": "dead-run", "hostname": "gone@host",
                              "entry": "nightly", "locked_at": time.time() - 60})
    dead.try_acquire()
    app_redis(app).delete(key)  # its worker died; the TTL ran out
    assert ht.blocker.apply(args=("crashy",)).state == "SUCCESS"
    records = {r.task_id: r for r in drained_records(app_history, expected=2)}
    lost = records["dead-run"]
    assert (lost.status, lost.hostname, lost.entry, lost.fencing_token) == ("lost", "gone@host", "nightly",
                                                                            dead.fencing_token)


# -- the database goes down mid-run ---------------------------------------------------------------

class SwitchableDatabase:
    """A SQLite history whose engine can be swapped for one whose server refuses connections."""

    def __init__(self, url: str):
        self.up = engine_for(url)
        self.current = self.up

    def stop(self) -> None:
        self.current = make_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/none")

    def start(self) -> None:
        self.current = self.up


class RestartablePostgres:
    """A private Postgres cluster this test really stops and starts again (pg_ctl)."""

    def __init__(self):
        self.server = PostgresServer(require_postgres_bin_dir()).start()
        self.url = upgraded(fresh_postgres_database(self.server.url))
        self.options = (f"-p {self.server.port} -k {self.server.root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c synchronous_commit=off")
        self.current = engine_for(self.url)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        self._pg_ctl("-o", self.options, "-l", str(self.server.root / "postgres.log"), "-w", "-t", "30", "start")

    def close(self) -> None:
        engine_for(self.url).dispose()
        self.server.stop()

    def _pg_ctl(self, *args: str) -> None:
        prefix = ["runuser", "-u", self.server.run_as, "--"] if self.server.run_as else []
        subprocess.run([*prefix, str(self.server.bin_dir / "pg_ctl"), "-D", str(self.server.data_dir), *args],
                       check=True, capture_output=True, timeout=60)


@pytest.fixture(params=["sqlite", "postgres"])
def switchable_history(request, app, sqlite_url):
    database = SwitchableDatabase(sqlite_url) if request.param == "sqlite" else RestartablePostgres()
    store = HistoryStore(lambda: database.current, redis_client=app_redis(app))
    set_history_store(app, store)
    set_middlewares(app, standard_middlewares(app))
    yield database, store
    if request.param == "postgres":
        database.close()
    set_history_store(app, HistoryStore(engine_for(sqlite_url), redis_client=app_redis(app)))


def test_database_down_mid_run_the_task_succeeds_and_its_row_appears_once_it_is_back(
        switchable_history, worker, redis_client, caplog):
    database, store = switchable_history
    redis_client.set(ht.block_key("down"), 1, ex=60)
    result = ht.blocker.delay("down")
    wait_until(lambda: redis_client.get("hist:down:entered"), timeout_s=10, what="the run to start")
    database.stop()
    with caplog.at_level(logging.WARNING, logger="monitoring.history"):
        redis_client.delete(ht.block_key("down"))
        assert ended(result).state == "SUCCESS" and result.result > 0
        wait_until(lambda: "database unavailable" in caplog.text, timeout_s=20, what="the drainer's warning")
    assert store.pending_count() == 1  # kept in the spool, not lost
    database.start()
    # No drain by hand: the worker's drainer writes it once the database is back.
    rows = wait_until(lambda: [r for r in _query_or_empty(store) if r.task_id == result.id], timeout_s=40,
                      interval_s=0.2, what="the row after the database came back")
    assert [r.status for r in rows] == ["success"]
    wait_until(lambda: store.pending_count() == 0, timeout_s=10, what="an empty spool")
    store.drain()
    assert store.count() == 1


def _query_or_empty(store: HistoryStore) -> list[RunRecord]:
    try:
        return store.query(limit=10)
    except Exception:  # the database may still be starting
        return []


# -- retention and the command line ---------------------------------------------------------------

def test_purge_keeps_the_last_days_and_deletes_older_rows(app_history):
    now = datetime(2026, 3, 31, 12, 0, tzinfo=timezone.utc)
    rows = [RunRecord(task_name="t", task_id=f"{age}", status="success", finished_at=now - timedelta(days=age))
            for age in (0, 29, 31, 45)]
    app_history.write(rows)
    assert purge_older_than(app_history, now=now, days=30, batch_size=1) == 2
    assert sorted(r.task_id for r in app_history.query()) == ["0", "29"]


def test_the_purge_task_applies_beatkeeper_history_days(app_history, monkeypatch):
    now = datetime.now(timezone.utc)
    app_history.write([RunRecord(task_name="t", task_id=f"{age}", status="success",
                                 finished_at=now - timedelta(days=age)) for age in (1, 6, 8)])
    monkeypatch.setenv("BEATKEEPER_HISTORY_DAYS", "7")
    assert purge_history.apply().result == 1
    assert sorted(r.task_id for r in app_history.query(task="t")) == ["1", "6"]


def test_the_purge_entry_for_the_platform_schedule_validates(app):
    from schedules.settings import ScheduleSettings
    from schedules.validate import validate_schedule
    from schedules.platform import SCHEDULE

    validated = validate_schedule({"beatkeeper-purge-history": SCHEDULE["beatkeeper-purge-history"]},
                                  settings=ScheduleSettings(),
                                  registered_tasks=set(app.tasks), now=datetime(2026, 3, 1, tzinfo=timezone.utc))
    spec = validated.entries["beatkeeper-purge-history"]
    assert (spec.task, spec.overlap.value, spec.lock_key) == ("beatkeeper.purge_history", "skip", [])


def test_history_command_lists_newest_first_with_filters(app_history, worker):
    first = ended(ht.ok.delay("c"))
    failed = ended(ht.fail.delay("c"))
    last = ended(ht.ok.delay("c"))
    as_json = CliRunner().invoke(main, ["history", "--task", "tests.history.ok", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert [row["task_id"] for row in json.loads(as_json.output)] == [last.id, first.id]
    table = CliRunner().invoke(main, ["history", "--status", "failure"])
    header, row = table.output.strip().splitlines()
    assert header.split()[:3] == ["finished", "(UTC)", "status"]
    assert "failure" in row and "tests.history.fail" in row and "ValueError: boom c" in row
    assert failed.state == "FAILURE"
    limited = CliRunner().invoke(main, ["history", "--limit", "1", "--json"])
    assert [row["task_id"] for row in json.loads(limited.output)] == [last.id]
    counts = Counter(row["status"] for row in json.loads(CliRunner().invoke(main, ["history", "--json"]).output))
    assert counts == {"success": 2, "failure": 1}


def test_history_command_refuses_a_bad_since(app_history):
    result = CliRunner().invoke(main, ["history", "--since", "yesterday"])
    assert result.exit_code == 2 and "not an ISO-8601 date-time" in result.output

"""The history store: records, SQL round trips, the Redis spool and its exactly-once drain,
retention. Every SQL test runs on SQLite and on a real Postgres."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from monitoring.db import engine_for, make_engine
from monitoring.history import (DRAIN_LOCK_SUFFIX, HistoryStore, InvalidRunRecord, RunRecord,
                                unix_to_utc)
from tests.monitoring.databases import TEST_SPOOL_KEY
from tests.servers import free_port

SPOOL_KEY = TEST_SPOOL_KEY
DRAIN_LOCK_KEY = TEST_SPOOL_KEY + DRAIN_LOCK_SUFFIX

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def a_record(n: int = 0, **fields) -> RunRecord:
    """A successful scheduled run finishing ``n`` seconds after T0 + 2 s."""
    defaults = dict(task_name="jobs.sync", task_id=f"id-{n}", status="success", entry="sync-feeds",
                    fire_at=T0 + timedelta(seconds=n), received_at=T0 + timedelta(seconds=n, milliseconds=200),
                    started_at=T0 + timedelta(seconds=n, milliseconds=500),
                    finished_at=T0 + timedelta(seconds=n + 2), hostname="default@host-a")
    return RunRecord(**{**defaults, **fields})


# -- records ------------------------------------------------------------------------------------

def test_record_round_trips_through_json_with_every_field():
    record = a_record(7, status="failure", attempt=2, error_type="ValueError", error_message="boom\nline 2",
                      reason="r", fencing_token=41, pipeline_run_id="pipe-1")
    assert RunRecord.from_json(record.to_json()) == record


def test_lateness_is_start_minus_fire_and_duration_is_finish_minus_start():
    record = a_record(0)
    assert record.lateness_s == pytest.approx(0.5)
    assert record.duration_s == pytest.approx(1.5)


@pytest.mark.parametrize("fields, lateness_s, duration_s", [
    pytest.param({"fire_at": None}, None, 1.5, id="hand_triggered_run_has_no_lateness"),
    pytest.param({"status": "skipped_paused", "started_at": None}, None, None, id="skipped_run_has_neither"),
    pytest.param({"status": "lost"}, 0.5, None, id="lost_run_has_no_duration"),
])
def test_lateness_and_duration_are_none_when_they_mean_nothing(fields, lateness_s, duration_s):
    record = a_record(0, **fields)
    assert (record.lateness_s, record.duration_s) == (lateness_s, duration_s)


@pytest.mark.parametrize("fields, field_name", [
    pytest.param({"status": "done"}, "status", id="unknown_status_is_refused"),
    pytest.param({"finished_at": datetime(2026, 3, 1, 9, 0)}, "finished_at", id="naive_instant_is_refused"),
])
def test_invalid_records_are_refused_naming_the_field(fields, field_name):
    with pytest.raises(InvalidRunRecord) as refused:
        a_record(0, **fields)
    assert refused.value.field_name == field_name


def test_each_record_gets_its_own_key():
    assert a_record(0).record_id != a_record(0).record_id


# -- SQL ----------------------------------------------------------------------------------------

def test_written_records_read_back_equal_and_newest_first(history_store):
    records = [a_record(n, error_message=f"m{n}", fencing_token=n) for n in (3, 1, 2)]
    history_store.write(records)
    assert history_store.query() == sorted(records, key=lambda r: r.finished_at, reverse=True)


def test_writing_the_same_record_twice_stores_it_once(history_store):
    record = a_record(0)
    history_store.write([record])
    history_store.write([record, a_record(1)])
    assert history_store.count() == 2


@pytest.mark.parametrize("filters, expected_ids", [
    pytest.param({"task": "jobs.other"}, ["id-3"], id="by_task"),
    pytest.param({"entry": ""}, ["id-2"], id="by_entry_empty_means_by_hand"),
    pytest.param({"status": "failure"}, ["id-1"], id="by_status"),
    pytest.param({"since": T0 + timedelta(seconds=4)}, ["id-3", "id-2"], id="since_is_inclusive_on_finish"),
    pytest.param({"limit": 2}, ["id-3", "id-2"], id="limit_keeps_the_newest"),
])
def test_query_filters(history_store, filters, expected_ids):
    history_store.write([a_record(0), a_record(1, status="failure"), a_record(2, entry=""),
                         a_record(3, task_name="jobs.other")])
    assert [r.task_id for r in history_store.query(**filters)] == expected_ids


def test_purge_deletes_only_rows_finished_before_the_cutoff_in_batches(history_store):
    old = [a_record(n, finished_at=T0 - timedelta(days=40, seconds=n)) for n in range(25)]
    recent = [a_record(100 + n) for n in range(5)]
    history_store.write(old + recent)
    assert history_store.purge(older_than=T0 - timedelta(days=30), batch_size=10) == 25
    assert sorted(r.task_id for r in history_store.query(limit=100)) == sorted(r.task_id for r in recent)


# -- the spool ----------------------------------------------------------------------------------

def test_recorded_runs_wait_in_redis_until_drained(history_store, redis_client):
    for n in range(120):
        history_store.record(a_record(n))
    assert redis_client.llen(SPOOL_KEY) == 120 and history_store.count() == 0
    result = history_store.drain()
    assert (result.written, result.pending, result.error) == (120, 0, None)
    assert history_store.count() == 120
    assert not redis_client.exists(DRAIN_LOCK_KEY)


def test_drain_stops_after_max_batches(history_store):
    for n in range(120):
        history_store.record(a_record(n))
    result = history_store.drain(max_batches=1)
    assert (result.written, result.pending, history_store.count()) == (50, 70, 50)


def test_a_drain_that_crashed_after_its_commit_writes_nothing_twice(history_store, monkeypatch):
    records = [a_record(n) for n in range(30)]
    for record in records:
        history_store.record(record)
    real_eval = history_store.redis.eval

    def crash_before_trim(script, numkeys, *args):
        if "ltrim" in script:
            raise redis.ConnectionError("worker killed between commit and trim")
        return real_eval(script, numkeys, *args)

    monkeypatch.setattr(history_store.redis, "eval", crash_before_trim)
    with pytest.raises(redis.ConnectionError):
        history_store.drain()
    monkeypatch.setattr(history_store.redis, "eval", real_eval)
    assert history_store.count() == 30 and history_store.pending_count() == 30  # committed, not trimmed
    history_store.redis.delete(DRAIN_LOCK_KEY)  # the crashed drainer's lock expires
    history_store.drain()
    assert history_store.count() == 30 and history_store.pending_count() == 0
    assert sorted(r.record_id for r in history_store.query(limit=100)) == sorted(r.record_id for r in records)


def test_a_drain_whose_lock_expired_leaves_the_spool_to_the_new_owner(history_store, redis_client, monkeypatch):
    for n in range(10):
        history_store.record(a_record(n))
    real_write = history_store.write

    def slow_commit(records):
        real_write(records)
        redis_client.set(DRAIN_LOCK_KEY, "another-drainer")  # ours expired mid-commit; someone took it

    monkeypatch.setattr(history_store, "write", slow_commit)
    result = history_store.drain()
    assert result.written == 0 and redis_client.llen(SPOOL_KEY) == 10  # did not trim what it no longer owns
    assert redis_client.get(DRAIN_LOCK_KEY) == "another-drainer"  # and did not release someone else's lock
    monkeypatch.setattr(history_store, "write", real_write)
    redis_client.delete(DRAIN_LOCK_KEY)
    history_store.drain()
    assert history_store.count() == 10 and redis_client.llen(SPOOL_KEY) == 0


def test_drain_returns_at_once_while_another_process_drains(history_store, redis_client):
    history_store.record(a_record(0))
    redis_client.set(DRAIN_LOCK_KEY, "busy")
    assert history_store.drain().written == 0 and history_store.pending_count() == 1


def test_database_down_keeps_records_spooled_then_writes_each_once(history_url, redis_client, caplog):
    up = engine_for(history_url)
    down = make_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/none")  # connection refused
    engine = {"now": down}
    store = HistoryStore(lambda: engine["now"], redis_client=redis_client, batch_size=7, spool_key=SPOOL_KEY)
    records = [a_record(n) for n in range(20)]
    for record in records:
        store.record(record)
    with caplog.at_level(logging.WARNING, logger="monitoring.history"):
        first, second = store.drain(), store.drain()
    assert first.written == 0 and first.pending == 20 and "OperationalError" in first.error
    assert second.pending == 20
    assert sum("database unavailable" in m for m in caplog.messages) == 1  # one warning per outage
    engine["now"] = up
    assert store.drain().written == 20
    assert sorted(r.record_id for r in store.query(limit=100)) == sorted(r.record_id for r in records)


def test_a_database_never_upgraded_says_how_to_create_the_table(tmp_path, redis_client, caplog):
    store = HistoryStore(engine_for(f"sqlite:///{tmp_path / 'empty.db'}"), redis_client=redis_client,
                         spool_key=SPOOL_KEY)
    store.record(a_record(0))
    with caplog.at_level(logging.WARNING, logger="monitoring.history"):
        result = store.drain()
    assert (result.written, result.pending) == (0, 1)
    assert "run `beatkeeper db upgrade`" in caplog.text


def test_redis_down_keeps_records_in_memory_until_it_is_back(sqlite_url, redis_client, caplog):
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    store = HistoryStore(engine_for(sqlite_url), redis_client=dead, spool_key=SPOOL_KEY)
    with caplog.at_level(logging.WARNING, logger="monitoring.history"):
        store.record(a_record(0))
        store.record(a_record(1))
    assert "kept in memory" in caplog.text
    store.redis = redis_client  # Redis is back
    store.record(a_record(2))
    assert redis_client.llen(SPOOL_KEY) == 3
    assert store.drain().written == 3 and store.count() == 3


def test_an_unreadable_spooled_item_is_dropped_without_blocking_the_rest(history_store, redis_client, caplog):
    history_store.record(a_record(0))
    redis_client.rpush(SPOOL_KEY, "{not json")
    history_store.record(a_record(1))
    with caplog.at_level(logging.WARNING, logger="monitoring.history"):
        result = history_store.drain()
    assert (result.written, result.pending, history_store.count()) == (2, 0, 2)
    assert "unreadable" in caplog.text


def test_unix_to_utc_is_aware_utc():
    assert unix_to_utc(T0.timestamp()) == T0 and unix_to_utc(None) is None

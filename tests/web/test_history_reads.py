"""The overview's read of every entry's latest runs (two statements for all entries: LATERAL on
Postgres, a correlated LIMIT subquery on SQLite) against the history store's own newest-first
query, entry by entry, on SQLite and on a real Postgres."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitoring.history import RunRecord
from monitoring.web.history_reads import recent_runs_of
from tests.monitoring.databases import history_store, history_url, postgres_db_url, sqlite_url  # noqa: F401

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
STATUSES = ["success", "failure", "skipped_overlap", "success", "retry", "lost"]


def a_run(entry: str, n: int, *, finished_s: float | None = None) -> RunRecord:
    fire_at = T0 + timedelta(minutes=n)
    status = STATUSES[n % len(STATUSES)]
    return RunRecord(task_name="jobs.sync", task_id=f"{entry}-{n}", status=status, entry=entry, fire_at=fire_at,
                     started_at=None if status == "skipped_overlap" else fire_at + timedelta(seconds=n % 4),
                     finished_at=T0 + timedelta(seconds=finished_s) if finished_s is not None
                     else fire_at + timedelta(seconds=5),
                     error_type="ValueError" if status == "failure" else None,
                     error_message=f"bad <b>{n}</b>" if status == "failure" else None)


def test_each_entrys_latest_runs_match_the_stores_newest_first_query(history_store):  # noqa: F811
    runs = [a_run("many", n) for n in range(25)]
    runs += [a_run("few", n) for n in range(3)]
    # five runs finishing at the same instant: the tie is broken by the row id, newest first
    runs += [a_run("ties", n, finished_s=600) for n in range(5)]
    runs += [a_run("ties", n, finished_s=60) for n in range(5, 12)]
    runs += [a_run("", n) for n in range(4)]  # hand-triggered runs have entry ''
    history_store.write(runs)
    history_store.write([a_run("late-write", n) for n in range(30, 0, -1)])  # ids in the reverse of finish order

    found = recent_runs_of(history_store.engine, ["many", "few", "ties", "late-write", "never-ran", "many"], limit=10)

    assert sorted(found) == ["few", "late-write", "many", "ties"]
    for entry, recent in found.items():
        expected = history_store.query(entry=entry, limit=10)
        assert recent.last == expected[0], entry
        assert recent.strip == [(r.status, r.lateness_s) for r in expected], entry
    assert len(found["few"].strip) == 3 and len(found["many"].strip) == 10
    assert found["many"].last.task_id == "many-24" and found["many"].last.error_message is None
    assert found["late-write"].last.task_id == "late-write-30"


def test_no_entries_asks_nothing(history_store):  # noqa: F811
    history_store.write([a_run("many", 1)])
    assert recent_runs_of(history_store.engine, []) == {}

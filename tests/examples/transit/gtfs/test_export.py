"""Export: a deterministic, self-describing SQLite file for the app, written atomically."""
from __future__ import annotations

import hashlib
import sqlite3

import pytest

from examples.transit.gtfs import (EXPORT_SCHEMA_VERSION, GtfsStateError, export_app_database, refresh_derived_tables,
                        sync_static_feed)
from tests.examples.transit.gtfs.feedgen import NOW, WEEK_START, small_feed

APP_DEPARTURES = """
SELECT d.service_date, s.stop_id, d.departure_s, t.trip_id, r.route_id, t.headsign
FROM departures d JOIN stops s USING (stop_key) JOIN trips t USING (trip_key) JOIN routes r USING (route_key)
"""


def prepared(url, feed_server, *, version=1):
    feed_server.set_feed(small_feed(version=version).zip_bytes(), modified_at=NOW)
    sync_static_feed(feed_url=feed_server.url, database=url, now=NOW)
    refresh_derived_tables(database=url, now=NOW)
    return url


def app_departures(path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(APP_DEPARTURES).fetchall()
    return sorted((WEEK_START.replace(year=d // 10000, month=d // 100 % 100, day=d % 100), *rest)
                  for d, *rest in rows)


def test_export_is_byte_identical_for_the_same_input(database_url, feed_server, tmp_path):
    prepared(database_url, feed_server)
    first = export_app_database(database=database_url, output_path=tmp_path / "a" / "gtfs.sqlite")
    second = export_app_database(database=database_url, output_path=tmp_path / "b" / "gtfs.sqlite")
    a, b = (tmp_path / "a" / "gtfs.sqlite").read_bytes(), (tmp_path / "b" / "gtfs.sqlite").read_bytes()
    assert a == b and first.checksum == second.checksum == hashlib.sha256(a).hexdigest()
    assert first.size_bytes == len(a)


def test_export_holds_the_timetable_and_describes_itself(database_url, feed_server, tmp_path):
    prepared(database_url, feed_server)
    result = export_app_database(database=database_url, output_path=tmp_path / "gtfs.sqlite")
    feed = small_feed()
    assert app_departures(tmp_path / "gtfs.sqlite") == feed.expected_departures(*feed.date_range())
    with sqlite3.connect(tmp_path / "gtfs.sqlite") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == EXPORT_SCHEMA_VERSION
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == str(EXPORT_SCHEMA_VERSION)
    assert meta["feed_sha256"] == result.feed_sha256
    assert (meta["first_service_date"], meta["last_service_date"]) == ("2024-03-04", "2024-03-10")
    assert meta["departures_rows"] == str(result.row_counts["departures"])


def test_app_lookup_uses_the_departures_key(sqlite_url, feed_server, tmp_path):
    prepared(sqlite_url, feed_server)
    export_app_database(database=sqlite_url, output_path=tmp_path / "gtfs.sqlite")
    lookup = ("SELECT departure_s, trip_key FROM departures WHERE stop_key = ? AND service_date = ? "
              "AND departure_s >= ? ORDER BY departure_s")
    with sqlite3.connect(tmp_path / "gtfs.sqlite") as conn:
        (stop_key,) = conn.execute("SELECT stop_key FROM stops WHERE stop_id = 'S1'").fetchone()
        plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + lookup, (stop_key, 20240304, 8 * 3600)))
        rows = conn.execute(lookup, (stop_key, 20240304, 8 * 3600)).fetchall()
    assert "USING PRIMARY KEY" in plan and "TEMP B-TREE" not in plan
    assert [departure for departure, _ in rows] == [8 * 3600 + 30 * 60, 23 * 3600 + 40 * 60]


def test_export_of_stale_derived_data_is_refused_and_keeps_the_old_file(sqlite_url, feed_server, tmp_path):
    prepared(sqlite_url, feed_server)
    output = tmp_path / "gtfs.sqlite"
    export_app_database(database=sqlite_url, output_path=output)
    old = output.read_bytes()
    feed_server.set_feed(small_feed(version=2).zip_bytes(), modified_at=NOW)
    sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=NOW)  # no refresh after it
    with pytest.raises(GtfsStateError, match="run the refresh step first"):
        export_app_database(database=sqlite_url, output_path=output)
    assert output.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir() if p.name != "gtfs.db"] == ["gtfs.sqlite"]  # no temp file left


def test_failure_while_building_keeps_the_old_file_and_no_temp_file(sqlite_url, feed_server, tmp_path):
    prepared(sqlite_url, feed_server)
    output = tmp_path / "gtfs.sqlite"
    export_app_database(database=sqlite_url, output_path=output)
    old = output.read_bytes()
    with sqlite3.connect(tmp_path / "gtfs.db") as conn:  # departures now name a trip that is gone
        conn.execute("DELETE FROM gtfs_trips WHERE trip_id = 'T6'")
    conn.close()
    with pytest.raises(KeyError, match="T6"):
        export_app_database(database=sqlite_url, output_path=output)
    assert output.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir() if p.name != "gtfs.db"] == ["gtfs.sqlite"]


def test_resumed_history_exports_what_a_clean_run_exports(tmp_path, feed_server):
    """Same loaded feed, different paths to it (an earlier feed, reloads): the same bytes."""
    resumed = prepared(f"sqlite:///{tmp_path / 'resumed.db'}", feed_server, version=1)
    prepared(resumed, feed_server, version=2)
    refresh_derived_tables(database=resumed, now=NOW, force=True)
    clean = prepared(f"sqlite:///{tmp_path / 'clean.db'}", feed_server, version=2)
    a = export_app_database(database=resumed, output_path=tmp_path / "resumed.sqlite")
    b = export_app_database(database=clean, output_path=tmp_path / "clean.sqlite")
    assert a.checksum == b.checksum
    assert (tmp_path / "resumed.sqlite").read_bytes() == (tmp_path / "clean.sqlite").read_bytes()


def test_export_before_any_sync_is_a_state_error(sqlite_url, tmp_path):
    with pytest.raises(GtfsStateError, match="run the sync step first"):
        export_app_database(database=sqlite_url, output_path=tmp_path / "gtfs.sqlite")
    assert not (tmp_path / "gtfs.sqlite").exists()


def test_sqlite_and_postgres_give_the_same_file(sqlite_url, postgres_url, feed_server, tmp_path):
    """Code-point ordering and integer dates make the export independent of the database."""
    exports = [export_app_database(database=prepared(url, feed_server), output_path=tmp_path / f"{i}.sqlite")
               for i, url in enumerate([sqlite_url, postgres_url])]
    assert exports[0].checksum == exports[1].checksum
    assert (tmp_path / "0.sqlite").read_bytes() == (tmp_path / "1.sqlite").read_bytes()

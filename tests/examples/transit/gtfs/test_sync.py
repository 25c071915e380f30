"""Sync: load once, skip unchanged feeds without loading work, keep the previous data on failure."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from examples.transit.gtfs import GtfsDownloadError, GtfsFeedError, sync_static_feed
from examples.transit.gtfs.schema import FEED_TABLE_NAMES
from tests.examples.transit.gtfs.feedgen import NOW, small_feed, zip_files

LATER = NOW + timedelta(days=1)


def snapshot(db, url) -> dict:
    """Everything a failed or skipped sync must leave exactly as it was."""
    return {"rows": {t: db.rows(url, t) for t in FEED_TABLE_NAMES},
            "identity": db.table_identity(url, "gtfs_stop_times"), "state": db.sync_state(url)}


def test_sync_loads_every_file(database_url, feed_server, feed, db):
    result = sync_static_feed(feed_url=feed_server.url, database=database_url, now=NOW)
    assert result.status == "loaded" and result.load_count == 1
    assert result.checksum == hashlib.sha256(feed_server.body).hexdigest() == db.sync_state(database_url)["feed_sha256"]
    expected = sorted((t.trip_id, seq, stop, arr, dep)
                      for t in feed.trips for seq, stop, arr, dep in feed.stop_events(t))
    assert db.rows(database_url, "gtfs_stop_times") == expected
    assert db.rows(database_url, "gtfs_stops") == [(sid, name, round(lat, 6), round(lon, 6), 0, None)
                                                   for sid, name, lat, lon in feed.stops]
    assert result.row_counts == {t: len(db.rows(database_url, t)) for t in FEED_TABLE_NAMES}
    assert not any(name.startswith("staging_") for name in db.table_names(database_url))


def test_unchanged_feed_gets_304_and_no_loading_work(database_url, feed_server, db):
    sync_static_feed(feed_url=feed_server.url, database=database_url, now=NOW)
    before = snapshot(db, database_url)
    result = sync_static_feed(feed_url=feed_server.url, database=database_url, now=LATER)
    assert result.status == "unchanged" and result.checksum == before["state"]["feed_sha256"]
    assert feed_server.counts["not_modified"] == 1 and feed_server.counts["full"] == 1
    after = snapshot(db, database_url)
    assert after["rows"] == before["rows"] and after["identity"] == before["identity"]
    assert after["state"]["load_count"] == 1 and after["state"]["check_count"] == 2
    assert after["state"]["loaded_at"] == before["state"]["loaded_at"]


def test_server_without_validators_is_unchanged_by_checksum(sqlite_url, feed_server, db):
    feed_server.send_validators = False
    sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=NOW)
    identity = db.table_identity(sqlite_url, "gtfs_stop_times")
    result = sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=LATER)
    assert result.status == "unchanged"
    assert feed_server.counts["full"] == 2  # downloaded again, but not loaded again
    assert db.table_identity(sqlite_url, "gtfs_stop_times") == identity
    assert db.sync_state(sqlite_url)["load_count"] == 1


def test_changed_feed_is_loaded_without_duplicates(database_url, feed_server, db):
    sync_static_feed(feed_url=feed_server.url, database=database_url, now=NOW)
    feed_server.set_feed(small_feed(version=2).zip_bytes(), modified_at=LATER)
    result = sync_static_feed(feed_url=feed_server.url, database=database_url, now=LATER)
    assert result.status == "loaded" and result.load_count == 2
    trips = [row[0] for row in db.rows(database_url, "gtfs_trips")]
    assert trips == ["T1", "T2", "T3", "T4", "T5", "T6", "T7"]
    assert len(db.rows(database_url, "gtfs_stop_times")) == result.row_counts["gtfs_stop_times"] == 25


def test_force_reloads_an_unchanged_feed(sqlite_url, feed_server, db):
    first = sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=NOW)
    rows = db.rows(sqlite_url, "gtfs_stop_times")
    again = sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=LATER, force=True)
    assert again.status == "loaded" and again.load_count == 2 and again.checksum == first.checksum
    assert db.rows(sqlite_url, "gtfs_stop_times") == rows


def test_new_feed_url_is_not_answered_by_old_validators(sqlite_url, feed_server):
    sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=NOW)
    result = sync_static_feed(feed_url=feed_server.url + "?mirror=2", database=sqlite_url, now=LATER)
    assert result.status == "loaded" and feed_server.counts["not_modified"] == 0


def _with(change):
    files = small_feed(version=2).files()
    change(files)
    return zip_files(files)


def _set(files, name, line, column, value):
    files[name][line - 1][files[name][0].index(column)] = value


def _drop_column(files, name, column):
    i = files[name][0].index(column)
    files[name] = [row[:i] + row[i + 1:] for row in files[name]]


def _split_trip_duplicate(files):
    """T1's stop 1 again at the end of the file: not adjacent, so only the unique index sees it."""
    files["stop_times.txt"].append(list(files["stop_times.txt"][1]))


BROKEN = {
    "missing_stops_file": (lambda: _with(lambda f: f.pop("stops.txt")), "stops.txt is missing"),
    "minutes_past_59": (lambda: _with(lambda f: _set(f, "stop_times.txt", 7, "arrival_time", "25:61:00")),
                        "stop_times.txt line 7: arrival_time '25:61:00' is not a valid GTFS time"),
    "trip_on_missing_route": (lambda: _with(lambda f: _set(f, "trips.txt", 3, "route_id", "R9")),
                              "trips.txt line 3: route_id 'R9' does not exist in routes.txt"),
    "missing_required_column": (lambda: _with(lambda f: _drop_column(f, "trips.txt", "service_id")),
                                "trips.txt is missing required column 'service_id'"),
    "not_a_zip": (lambda: b"<html>maintenance</html>", "feed is not a zip archive (File is not a zip file)"),
    "duplicate_found_only_at_swap": (lambda: _with(_split_trip_duplicate),
                                     "stop_times.txt has duplicate (trip_id, stop_sequence) values"),
}


@pytest.mark.parametrize("make_body, message", BROKEN.values(), ids=BROKEN.keys())
def test_bad_feed_fails_clearly_and_keeps_previous_data(database_url, feed_server, db, make_body, message):
    sync_static_feed(feed_url=feed_server.url, database=database_url, now=NOW)
    before = snapshot(db, database_url)
    feed_server.set_feed(make_body(), modified_at=LATER)
    with pytest.raises(GtfsFeedError) as caught:
        sync_static_feed(feed_url=feed_server.url, database=database_url, now=LATER)
    assert str(caught.value) == message
    assert snapshot(db, database_url) == before
    assert not any(name.startswith("staging_") for name in db.table_names(database_url))


def test_download_failure_keeps_previous_data(sqlite_url, feed_server, db):
    sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=NOW)
    before = snapshot(db, sqlite_url)
    feed_server.fail_status = 500
    with pytest.raises(GtfsDownloadError):
        sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=LATER)
    assert snapshot(db, sqlite_url) == before


def test_bad_first_feed_leaves_no_tables(sqlite_url, feed_server, db):
    feed_server.set_feed(_with(lambda f: f.pop("stops.txt")), modified_at=datetime(2024, 3, 1, tzinfo=timezone.utc))
    with pytest.raises(GtfsFeedError):
        sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=NOW)
    assert not set(FEED_TABLE_NAMES) & db.table_names(sqlite_url)

"""The four steps in order, on SQLite and on a real Postgres: feed served over HTTP with ETags,
export published to an HTTP PUT store, and the published file checked against the timetable."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import date, timedelta

import pytest

from examples.transit.gtfs import (GtfsFeedError, export_app_database, publish_export, refresh_derived_tables,
                        sync_static_feed)
from tests.examples.transit.gtfs.feedgen import NOW, small_feed, zip_files


def run_pipeline(*, feed_url, database_url, work_dir, target, now=NOW) -> dict:
    synced = sync_static_feed(feed_url=feed_url, database=database_url, now=now)
    refreshed = refresh_derived_tables(database=database_url, now=now)
    exported = export_app_database(database=database_url, output_path=work_dir / "gtfs.sqlite")
    published = publish_export(export_path=exported.path, target=target, now=now)
    return {"sync": synced, "refresh": refreshed, "export": exported, "publish": published}


def published_departures(receiver, tmp_path) -> list[tuple]:
    """What an app sees: read the manifest, fetch the file it names, check it, query it."""
    manifest = json.loads(receiver.objects["manifest.json"])
    data = receiver.objects[manifest["file"]]
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"] and len(data) == manifest["size_bytes"]
    path = tmp_path / f"downloaded-v{manifest['version']}.sqlite"
    path.write_bytes(data)
    with sqlite3.connect(path) as conn:
        rows = conn.execute("""
            SELECT d.service_date, s.stop_id, d.departure_s, t.trip_id, r.route_id, t.headsign
            FROM departures d JOIN stops s USING (stop_key) JOIN trips t USING (trip_key)
            JOIN routes r USING (route_key)""").fetchall()
    conn.close()
    return sorted((date(d // 10000, d // 100 % 100, d % 100), *rest) for d, *rest in rows)


def test_published_file_matches_the_timetable(database_url, feed_server, put_receiver, feed, tmp_path):
    results = run_pipeline(feed_url=feed_server.url, database_url=database_url, work_dir=tmp_path,
                           target=put_receiver.base_url)
    assert [r.status for r in results.values()] == ["loaded", "refreshed", "exported", "published"]
    assert published_departures(put_receiver, tmp_path) == feed.expected_departures(*feed.date_range())
    assert all(len(r.checksum) == 64 for r in results.values())
    for result in results.values():  # JSON-ready: the task layer passes them between tasks
        assert json.loads(json.dumps(result.as_dict())) == result.as_dict()


def test_unchanged_feed_publishes_nothing_and_a_changed_feed_a_new_version(database_url, feed_server,
                                                                         put_receiver, tmp_path):
    first = run_pipeline(feed_url=feed_server.url, database_url=database_url, work_dir=tmp_path,
                         target=put_receiver.base_url)
    again = run_pipeline(feed_url=feed_server.url, database_url=database_url, work_dir=tmp_path,
                         target=put_receiver.base_url, now=NOW + timedelta(days=1))
    assert (again["sync"].status, again["sync"].load_count) == ("unchanged", 1)
    assert feed_server.counts["not_modified"] == 1
    assert again["publish"].status == "unchanged" and len(put_receiver.puts()) == 2
    assert {k: r.checksum for k, r in again.items()} == {k: r.checksum for k, r in first.items()}

    changed = small_feed(version=2)
    feed_server.set_feed(changed.zip_bytes(), modified_at=NOW + timedelta(days=2))
    third = run_pipeline(feed_url=feed_server.url, database_url=database_url, work_dir=tmp_path,
                         target=put_receiver.base_url, now=NOW + timedelta(days=2))
    assert (third["sync"].status, third["publish"].status, third["publish"].version) == ("loaded", "published", 2)
    assert published_departures(put_receiver, tmp_path) == changed.expected_departures(*changed.date_range())


def _bad_time():
    files = small_feed(version=2).files()
    files["stop_times.txt"][6][1] = "25:61:00"
    return zip_files(files)


@pytest.mark.parametrize("bad_body, message", [
    (_bad_time, "stop_times.txt line 7: arrival_time '25:61:00' is not a valid GTFS time"),
    (lambda: b"PK\x03\x04 truncated", "feed is not a zip archive (File is not a zip file)"),
], ids=["bad_time_stops_the_pipeline", "not_a_zip_stops_the_pipeline"])
def test_bad_feed_leaves_the_published_version_in_place(database_url, feed_server, put_receiver, feed, tmp_path,
                                                        bad_body, message):
    run_pipeline(feed_url=feed_server.url, database_url=database_url, work_dir=tmp_path,
                 target=put_receiver.base_url)
    live = dict(put_receiver.objects)
    feed_server.set_feed(bad_body(), modified_at=NOW + timedelta(days=1))
    with pytest.raises(GtfsFeedError) as caught:
        run_pipeline(feed_url=feed_server.url, database_url=database_url, work_dir=tmp_path,
                     target=put_receiver.base_url)
    assert str(caught.value) == message
    assert put_receiver.objects == live
    # The database still holds the previous feed, consistent end to end: re-running the later
    # steps by hand republishes nothing.
    refreshed = refresh_derived_tables(database=database_url, now=NOW)
    exported = export_app_database(database=database_url, output_path=tmp_path / "again.sqlite")
    assert refreshed.status == "unchanged"
    assert publish_export(export_path=exported.path, target=put_receiver.base_url, now=NOW).status == "unchanged"
    assert published_departures(put_receiver, tmp_path) == feed.expected_departures(*feed.date_range())

"""Refresh: service days expanded by the GTFS rules, departures and route summaries that match
the timetable the feed was generated from."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from examples.transit.gtfs import GtfsStateError, refresh_derived_tables, sync_static_feed
from examples.transit.gtfs.refresh import expand_service_dates
from tests.examples.transit.gtfs.feedgen import NOW, WEEK_START, small_feed

MON = WEEK_START
WEEK = [MON + timedelta(days=i) for i in range(7)]


def _calendar(service_id, days, start=MON, end=MON + timedelta(days=6)):
    names = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return {"service_id": service_id, "start_date": start, "end_date": end, **dict(zip(names, days))}


SERVICE_RULES = {
    "weekday_flags_select_days": (
        [_calendar("S", (1, 0, 1, 0, 0, 0, 1))], [], (MON, WEEK[6]), {WEEK[0], WEEK[2], WEEK[6]}),
    "removed_exception_beats_calendar": (
        [_calendar("S", (1, 1, 1, 1, 1, 0, 0))], [{"service_id": "S", "date": WEEK[2], "exception_type": 2}],
        (MON, WEEK[6]), {WEEK[0], WEEK[1], WEEK[3], WEEK[4]}),
    "added_exception_runs_outside_calendar": (
        [_calendar("S", (0, 0, 0, 0, 0, 1, 1))], [{"service_id": "S", "date": WEEK[2], "exception_type": 1}],
        (MON, WEEK[6]), {WEEK[2], WEEK[5], WEEK[6]}),
    "calendar_dates_only_service": (
        [], [{"service_id": "S", "date": WEEK[4], "exception_type": 1}], (MON, WEEK[6]), {WEEK[4]}),
    "calendar_bounds_respected": (
        [_calendar("S", (1,) * 7, start=WEEK[2], end=WEEK[3])], [], (MON, WEEK[6]), {WEEK[2], WEEK[3]}),
    "horizon_clips_calendar_and_exceptions": (
        [_calendar("S", (1,) * 7)], [{"service_id": "S", "date": WEEK[6], "exception_type": 1}],
        (WEEK[1], WEEK[2]), {WEEK[1], WEEK[2]}),
}


@pytest.mark.parametrize("calendar, exceptions, horizon, days", SERVICE_RULES.values(), ids=SERVICE_RULES.keys())
def test_service_days_follow_gtfs_rules(calendar, exceptions, horizon, days):
    pairs = expand_service_dates(calendar, exceptions, first=horizon[0], last=horizon[1])
    assert pairs == {("S", d) for d in days}


def departures_as_in_feed(db, url) -> list[tuple]:
    """gtfs_departures projected on the columns the feed generator predicts."""
    return sorted((d, stop, dep, trip, route, headsign)
                  for d, stop, dep, trip, _seq, route, headsign in db.rows(url, "gtfs_departures"))


def test_departures_match_the_timetable(database_url, feed_server, feed, db):
    sync_static_feed(feed_url=feed_server.url, database=database_url, now=NOW)
    result = refresh_derived_tables(database=database_url, now=NOW)
    first, last = feed.date_range()
    assert (result.first_service_date, result.last_service_date) == (first, last) == (MON, WEEK[6])
    expected = feed.expected_departures(first, last)
    assert departures_as_in_feed(db, database_url) == expected
    assert result.row_counts["gtfs_departures"] == len(expected)
    # The trip past midnight keeps its service day: 24:20 on Monday's service, not Tuesday's.
    assert (MON, "S4", 24 * 3600 + 20 * 60, "T3", "R1", "Circular Quay") in expected


def test_route_summaries_match_the_timetable(database_url, feed_server, feed, db):
    sync_static_feed(feed_url=feed_server.url, database=database_url, now=NOW)
    refresh_derived_tables(database=database_url, now=NOW)
    expected = []
    for route_id in sorted(feed.patterns):
        trips = [t for t in feed.trips if t.route_id == route_id]
        events = [e for t in trips for e in feed.stop_events(t)]
        expected.append((route_id, len(trips), len({e[1] for e in events}), min(e[3] for e in events),
                         max(e[3] for e in events)))
    assert db.rows(database_url, "gtfs_route_summaries") == expected


def test_horizon_limits_the_departures(sqlite_url, feed_server, feed, db):
    sync_static_feed(feed_url=feed_server.url, database=sqlite_url, now=NOW)
    result = refresh_derived_tables(database=sqlite_url, first_service_date=WEEK[2], horizon_days=2, now=NOW)
    assert (result.first_service_date, result.last_service_date) == (WEEK[2], WEEK[3])
    assert departures_as_in_feed(db, sqlite_url) == feed.expected_departures(WEEK[2], WEEK[3])


def test_refresh_twice_gives_same_checksum_and_no_duplicates(database_url, feed_server, db):
    sync_static_feed(feed_url=feed_server.url, database=database_url, now=NOW)
    first = refresh_derived_tables(database=database_url, now=NOW)
    rows = db.rows(database_url, "gtfs_departures")
    skipped = refresh_derived_tables(database=database_url, now=NOW)
    forced = refresh_derived_tables(database=database_url, now=NOW, force=True)
    assert (skipped.status, forced.status) == ("unchanged", "refreshed")
    assert first.checksum == skipped.checksum == forced.checksum
    assert db.rows(database_url, "gtfs_departures") == rows


def test_new_feed_is_refreshed_with_a_new_checksum(database_url, feed_server, db):
    sync_static_feed(feed_url=feed_server.url, database=database_url, now=NOW)
    before = refresh_derived_tables(database=database_url, now=NOW)
    feed_server.set_feed(small_feed(version=2).zip_bytes(), modified_at=NOW)
    sync_static_feed(feed_url=feed_server.url, database=database_url, now=NOW)
    after = refresh_derived_tables(database=database_url, now=NOW)
    assert after.status == "refreshed" and after.checksum != before.checksum
    feed = small_feed(version=2)
    assert departures_as_in_feed(db, database_url) == feed.expected_departures(*feed.date_range())


def test_refresh_before_any_sync_is_a_state_error(sqlite_url):
    with pytest.raises(GtfsStateError, match="run the sync step first"):
        refresh_derived_tables(database=sqlite_url, now=NOW)


def test_horizon_days_must_be_positive(sqlite_url):
    with pytest.raises(ValueError, match="horizon_days must be at least 1, got 0"):
        refresh_derived_tables(database=sqlite_url, horizon_days=0)


def test_postgres_keeps_derived_data_as_materialized_views(postgres_url, feed_server):
    sync_static_feed(feed_url=feed_server.url, database=postgres_url, now=NOW)
    refresh_derived_tables(database=postgres_url, now=NOW)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            views = set(conn.execute(sa.text("SELECT matviewname FROM pg_matviews")).scalars())
    finally:
        engine.dispose()
    assert {"gtfs_departures", "gtfs_route_summaries"} <= views


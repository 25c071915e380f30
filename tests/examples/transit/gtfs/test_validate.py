"""The feed reader: GTFS times and dates, and one clear line for each way a feed can be bad."""
from __future__ import annotations

from datetime import date

import pytest

from examples.transit.gtfs.errors import GtfsFeedError
from examples.transit.gtfs.schema import feed_tables
from examples.transit.gtfs.validate import FeedArchive, feed_rows, parse_gtfs_date, parse_gtfs_time
from tests.examples.transit.gtfs.feedgen import small_feed, zip_files


@pytest.mark.parametrize("text, seconds", [
    ("00:00:00", 0),
    ("07:05:09", 7 * 3600 + 5 * 60 + 9),
    ("7:05:09", 7 * 3600 + 5 * 60 + 9),
    ("23:59:59", 86399),
    ("25:10:00", 90600),
    ("47:59:59", 47 * 3600 + 59 * 60 + 59),
], ids=["midnight_start", "two_digit_hour", "one_digit_hour", "last_second_of_day",
        "past_midnight_is_valid", "second_day_past_midnight_is_valid"])
def test_gtfs_time_parses(text, seconds):
    assert parse_gtfs_time(text) == seconds


@pytest.mark.parametrize("text", ["25:61:00", "08:00:60", "8:5:00", "08:00", "", "ab:00:00", "-1:00:00",
                                  "08:00:00.5", "１２:00:00"],
                         ids=["minutes_must_be_below_60", "seconds_must_be_below_60", "minutes_need_two_digits",
                              "seconds_required", "empty", "letters", "negative", "fractions", "non_ascii_digits"])
def test_gtfs_time_rejects(text):
    with pytest.raises(ValueError):
        parse_gtfs_time(text)


def test_gtfs_date_parses_and_rejects():
    assert parse_gtfs_date("20240229") == date(2024, 2, 29)
    for bad in ("20230229", "2024-02-29", "2024022", "20241301"):
        with pytest.raises(ValueError):
            parse_gtfs_date(bad)


def read_all(tmp_path, files: dict | bytes) -> dict[str, list[dict]]:
    path = tmp_path / "feed.zip"
    path.write_bytes(files if isinstance(files, bytes) else zip_files(files))
    archive = FeedArchive(path)
    try:
        return {table: [dict(zip(feed_tables[table].columns.keys(), row)) for row in rows]
                for table, rows in feed_rows(archive)}
    finally:
        archive.close()


def test_small_feed_reads_typed_rows(tmp_path):
    tables = read_all(tmp_path, small_feed().files())
    assert len(tables["gtfs_stop_times"]) == 22
    t3_last = [r for r in tables["gtfs_stop_times"] if r["trip_id"] == "T3"][-1]
    assert t3_last == {"trip_id": "T3", "stop_sequence": 4, "stop_id": "S4", "arrival_s": 87600,
                       "departure_s": 87600}  # 24:20:00
    assert tables["gtfs_calendar_dates"][0] == {"service_id": "WEEKDAY", "date": date(2024, 3, 6),
                                                "exception_type": 2}
    assert {r["route_id"]: r["route_short_name"] for r in tables["gtfs_routes"]} == {"R1": "T1", "R2": "333",
                                                                                    "R3": None}


def _set(files, name, line, column, value):
    header = files[name][0]
    files[name][line - 1][header.index(column)] = value


def _drop_column(files, name, column):
    i = files[name][0].index(column)
    files[name] = [row[:i] + row[i + 1:] for row in files[name]]


BAD_FEEDS = {
    "missing_stops_file": (lambda f: f.pop("stops.txt"), "stops.txt is missing"),
    "minutes_must_be_below_60": (lambda f: _set(f, "stop_times.txt", 7, "arrival_time", "25:61:00"),
                                 "stop_times.txt line 7: arrival_time '25:61:00' is not a valid GTFS time"),
    "trip_route_must_exist": (lambda f: _set(f, "trips.txt", 3, "route_id", "R9"),
                              "trips.txt line 3: route_id 'R9' does not exist in routes.txt"),
    "required_column_missing": (lambda f: _drop_column(f, "stops.txt", "stop_lat"),
                                "stops.txt is missing required column 'stop_lat'"),
    "no_calendar_file_at_all": (lambda f: (f.pop("calendar.txt"), f.pop("calendar_dates.txt")),
                                "neither calendar.txt nor calendar_dates.txt is present"),
    "stop_time_stop_must_exist": (lambda f: _set(f, "stop_times.txt", 4, "stop_id", "S99"),
                                  "stop_times.txt line 4: stop_id 'S99' does not exist in stops.txt"),
    "trip_service_must_exist": (lambda f: _set(f, "trips.txt", 2, "service_id", "NOPE"),
                                "trips.txt line 2: service_id 'NOPE' does not exist in calendar.txt or "
                                "calendar_dates.txt"),
    "stop_ids_are_unique": (lambda f: _set(f, "stops.txt", 3, "stop_id", "S1"),
                            "stops.txt line 3: stop_id 'S1' is a duplicate (first on line 2)"),
    "dates_are_yyyymmdd": (lambda f: _set(f, "calendar.txt", 2, "start_date", "2024-03-04"),
                           "calendar.txt line 2: start_date '2024-03-04' is not a valid GTFS date (YYYYMMDD)"),
    "departure_not_before_arrival": (lambda f: _set(f, "stop_times.txt", 3, "departure_time", "06:00:00"),
                                     "stop_times.txt line 3: departure_time '06:00:00' is before "
                                     "arrival_time '07:10:00'"),
    "stop_sequence_unique_per_trip": (lambda f: _set(f, "stop_times.txt", 3, "stop_sequence", "1"),
                                      "stop_times.txt line 3: stop_sequence 1 appears twice for trip_id 'T1'"),
    "row_width_matches_header": (lambda f: f["routes.txt"][2].append("extra"),
                                 "routes.txt line 3: has 6 fields but the header has 5"),
    "agency_zone_is_iana": (lambda f: _set(f, "agency.txt", 2, "agency_timezone", "Sydney"),
                            "agency.txt line 2: agency_timezone 'Sydney' is not an IANA time zone"),
    "exception_type_is_1_or_2": (lambda f: _set(f, "calendar_dates.txt", 2, "exception_type", "3"),
                                 "calendar_dates.txt line 2: exception_type '3' is out of range"),
}


@pytest.mark.parametrize("break_feed, message", BAD_FEEDS.values(), ids=BAD_FEEDS.keys())
def test_bad_feed_fails_with_one_clear_line(tmp_path, break_feed, message):
    files = small_feed().files()
    break_feed(files)
    with pytest.raises(GtfsFeedError) as caught:
        read_all(tmp_path, files)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_feed_error_carries_file_line_column_and_value(tmp_path):
    files = small_feed().files()
    _set(files, "stop_times.txt", 7, "arrival_time", "25:61:00")
    with pytest.raises(GtfsFeedError) as caught:
        read_all(tmp_path, files)
    error = caught.value
    assert (error.file, error.line, error.column, error.value) == ("stop_times.txt", 7, "arrival_time", "25:61:00")


def test_not_a_zip_is_refused(tmp_path):
    with pytest.raises(GtfsFeedError) as caught:
        read_all(tmp_path, b"<html><body>503 Service Unavailable</body></html>")
    assert str(caught.value).startswith("feed is not a zip archive")
    assert caught.value.file is None


def test_files_in_a_folder_are_reported_as_such(tmp_path):
    files = {f"gtfs/{name}": rows for name, rows in small_feed().files().items()}
    with pytest.raises(GtfsFeedError) as caught:
        read_all(tmp_path, files)
    assert str(caught.value) == ("agency.txt is missing (found gtfs/agency.txt: the files must be at the zip's "
                                 "top level)")


def test_calendar_dates_alone_is_enough(tmp_path):
    feed = small_feed()
    feed.trips = [t for t in feed.trips if t.service_id == "EVENT"]
    files = feed.files()
    files.pop("calendar.txt")
    tables = read_all(tmp_path, files)
    assert tables["gtfs_calendar"] == []
    assert [r["trip_id"] for r in tables["gtfs_trips"]] == ["T6"]


def test_untimed_intermediate_stop_is_allowed(tmp_path):
    files = small_feed().files()
    _set(files, "stop_times.txt", 3, "arrival_time", "")
    _set(files, "stop_times.txt", 3, "departure_time", "")
    rows = read_all(tmp_path, files)["gtfs_stop_times"]
    assert (rows[1]["arrival_s"], rows[1]["departure_s"]) == (None, None)


def test_bom_and_padded_header_are_read(tmp_path):
    files = small_feed().files()
    files["stops.txt"][0] = ["\ufeffstop_id", " stop_name", "stop_lat ", "stop_lon"]
    stops = read_all(tmp_path, files)["gtfs_stops"]
    assert [s["stop_id"] for s in stops] == ["S1", "S2", "S3", "S4", "S5", "S6"]

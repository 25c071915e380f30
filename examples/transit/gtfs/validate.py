"""Reading a GTFS static zip as a stream of checked, typed rows, one file at a time.

:func:`feed_rows` yields ``(table, rows)`` in load order; each ``rows`` is a lazy iterator of
tuples ready for a bulk insert. Nothing is held in memory but the ids later files refer to
(stop, route, service and trip ids), so a million stop_times stream through. The first
problem raises :class:`GtfsFeedError` naming the file, the line and the column.

Checked: required files and columns, ids present and unique, references to earlier files,
GTFS times (hours may pass 24, minutes and seconds must be below 60), dates, enums and
coordinates, (trip_id, stop_sequence) unique within each run of a trip's rows. A duplicate
pair split across runs is left to the unique index built at the swap (a set of a million
pairs would cost more memory than the whole load).
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date
from pathlib import Path
from typing import Callable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from examples.transit.gtfs.errors import GtfsFeedError
from examples.transit.gtfs.schema import WEEKDAYS

#: The files every feed needs; at least one of CALENDAR_FILES is needed too.
REQUIRED_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
CALENDAR_FILES = ("calendar.txt", "calendar_dates.txt")

REQUIRED_COLUMNS = {
    "agency.txt": ("agency_name", "agency_url", "agency_timezone"),
    "stops.txt": ("stop_id", "stop_name", "stop_lat", "stop_lon"),
    "routes.txt": ("route_id", "route_type"),
    "calendar.txt": ("service_id", *WEEKDAYS, "start_date", "end_date"),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence"),
}

_TIME = re.compile(r"(\d{1,2}):([0-5]\d):([0-5]\d)", re.ASCII)
_DATE = re.compile(r"\d{8}", re.ASCII)


def parse_gtfs_time(text: str) -> int:
    """Seconds from noon minus 12 h of the service date: ``'25:10:00'`` -> 90600. Raises ValueError."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(text)
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds)


def parse_gtfs_date(text: str) -> date:
    """``'20240131'`` -> date(2024, 1, 31). Raises ValueError."""
    if _DATE.fullmatch(text) is None:
        raise ValueError(text)
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


class FileRows:
    """The data rows of one CSV file in the archive, as ``(line, get)`` where ``get(column)``
    returns the stripped value ('' when absent), plus ``fail`` to report a problem at a line."""

    def __init__(self, archive: zipfile.ZipFile, name: str):
        self.archive = archive
        self.name = name
        self._stream = io.TextIOWrapper(archive.open(name), encoding="utf-8-sig", newline="")
        self._reader = csv.reader(self._stream)
        header = self._read_header()
        self.columns = {column: i for i, column in enumerate(header)}
        self._width = len(header)
        missing = [c for c in REQUIRED_COLUMNS.get(name, ()) if c not in self.columns]
        if missing:
            raise GtfsFeedError(f"is missing required column '{missing[0]}'", file=name, column=missing[0])

    def _read_header(self) -> list[str]:
        try:
            header = [c.strip() for c in next(self._reader)]
        except StopIteration:
            raise GtfsFeedError("is empty (no header line)", file=self.name) from None
        except (UnicodeDecodeError, csv.Error, zipfile.BadZipFile) as exc:
            raise GtfsFeedError(f"header is unreadable: {exc}", file=self.name, line=1) from None
        if len(set(header)) != len(header):
            duplicate = next(c for c in header if header.count(c) > 1)
            raise GtfsFeedError(f"column '{duplicate}' appears twice in the header", file=self.name, line=1)
        return header

    def fail(self, line: int, column: str | None, value: str | None, reason: str) -> GtfsFeedError:
        return GtfsFeedError(reason, file=self.name, line=line, column=column, value=value)

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        reader = self._reader
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error, zipfile.BadZipFile) as exc:
                raise self.fail(reader.line_num + 1, None, None, f"unreadable row: {exc}") from None
            if not row or row == [""]:
                continue  # blank lines are common at the end of exported files
            if len(row) != self._width:
                raise self.fail(reader.line_num, None, None,
                                f"has {len(row)} fields but the header has {self._width}")
            yield reader.line_num, [v.strip() for v in row]

    def index(self, column: str) -> int | None:
        return self.columns.get(column)


class FeedArchive:
    """An opened GTFS zip: refuses a file that is not a zip or lacks a required file."""

    def __init__(self, path: str | Path):
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise GtfsFeedError(f"feed is not a zip archive ({exc})") from None
        self.names = {n for n in self.zip.namelist() if "/" not in n}
        for name in REQUIRED_FILES:
            if name not in self.names:
                nested = next((n for n in self.zip.namelist() if n.endswith("/" + name)), None)
                hint = f" (found {nested}: the files must be at the zip's top level)" if nested else ""
                raise GtfsFeedError(f"is missing{hint}", file=name)
        if not any(name in self.names for name in CALENDAR_FILES):
            raise GtfsFeedError("neither calendar.txt nor calendar_dates.txt is present")

    def has(self, name: str) -> bool:
        return name in self.names

    def rows(self, name: str) -> FileRows:
        return FileRows(self.zip, name)

    def close(self) -> None:
        self.zip.close()


class _Ids:
    """The ids later files refer to, each with the line it was defined on."""

    def __init__(self) -> None:
        self.agencies: set[str] = set()
        self.stops: dict[str, int] = {}
        self.routes: dict[str, int] = {}
        self.services: set[str] = set()
        self.trips: dict[str, int] = {}


def feed_rows(archive: FeedArchive) -> Iterator[tuple[str, Iterator[tuple]]]:
    """``(table name, rows)`` for each feed table, in load order; each row is a tuple in the
    order of the table's columns (:data:`examples.transit.gtfs.schema.feed_tables`). Consume each ``rows``
    fully before asking for the next table (later files are checked against earlier ones)."""
    ids = _Ids()
    plan: list[tuple[str, str, Callable[[FileRows, _Ids], Iterator[tuple]]]] = [
        ("gtfs_agency", "agency.txt", _agency_rows),
        ("gtfs_stops", "stops.txt", _stop_rows),
        ("gtfs_routes", "routes.txt", _route_rows),
        ("gtfs_calendar", "calendar.txt", _calendar_rows),
        ("gtfs_calendar_dates", "calendar_dates.txt", _calendar_date_rows),
        ("gtfs_trips", "trips.txt", _trip_rows),
        ("gtfs_stop_times", "stop_times.txt", _stop_time_rows),
    ]
    for table, name, parse in plan:
        yield table, (parse(archive.rows(name), ids) if archive.has(name) else iter(()))


# -- one parser per file ------------------------------------------------------------------
# Each reads its columns by position once per file, then loops without per-row lookups.

def _getter(rows: FileRows, column: str) -> Callable[[list[str]], str]:
    i = rows.index(column)
    return (lambda row: "") if i is None else (lambda row: row[i])


def _required(rows: FileRows, line: int, column: str, value: str) -> str:
    if not value:
        raise rows.fail(line, column, value, f"{column} is empty")
    return value


def _unique(rows: FileRows, line: int, column: str, value: str, seen: dict[str, int]) -> str:
    _required(rows, line, column, value)
    if value in seen:
        raise rows.fail(line, column, value, f"{column} '{value}' is a duplicate (first on line {seen[value]})")
    seen[value] = line
    return value


def _exists(rows: FileRows, line: int, column: str, value: str, known, in_file: str) -> str:
    if value not in known:
        raise rows.fail(line, column, value, f"{column} '{value}' does not exist in {in_file}")
    return value


def _int(rows: FileRows, line: int, column: str, value: str, *, allowed=None, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise rows.fail(line, column, value, f"{column} '{value}' is not an integer") from None
    if number < minimum or (allowed is not None and number not in allowed):
        raise rows.fail(line, column, value, f"{column} '{value}' is out of range")
    return number


def _coordinate(rows: FileRows, line: int, column: str, value: str, limit: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise rows.fail(line, column, value, f"{column} '{value}' is not a number") from None
    if not -limit <= number <= limit:
        raise rows.fail(line, column, value, f"{column} '{value}' is outside -{limit:g}..{limit:g}")
    return number


def _date(rows: FileRows, line: int, column: str, value: str) -> date:
    try:
        return parse_gtfs_date(value)
    except ValueError:
        raise rows.fail(line, column, value, f"{column} '{value}' is not a valid GTFS date (YYYYMMDD)") from None


def _time(rows: FileRows, line: int, column: str, value: str) -> int | None:
    if not value:
        return None  # allowed between timepoints; such stops get no departure
    try:
        return parse_gtfs_time(value)
    except ValueError:
        raise rows.fail(line, column, value, f"{column} '{value}' is not a valid GTFS time") from None


def _agency_rows(rows: FileRows, ids: _Ids) -> Iterator[tuple]:
    agency_id, name, url, zone = (_getter(rows, c) for c in
                                  ("agency_id", "agency_name", "agency_url", "agency_timezone"))
    for line, row in rows:
        timezone = _required(rows, line, "agency_timezone", zone(row))
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise rows.fail(line, "agency_timezone", timezone,
                            f"agency_timezone '{timezone}' is not an IANA time zone") from None
        if agency_id(row):
            ids.agencies.add(agency_id(row))
        yield (agency_id(row) or None, _required(rows, line, "agency_name", name(row)),
               _required(rows, line, "agency_url", url(row)), timezone)


def _stop_rows(rows: FileRows, ids: _Ids) -> Iterator[tuple]:
    stop_id, name, lat, lon, kind, parent = (_getter(rows, c) for c in (
        "stop_id", "stop_name", "stop_lat", "stop_lon", "location_type", "parent_station"))
    for line, row in rows:
        location_type = _int(rows, line, "location_type", kind(row), allowed=range(5)) if kind(row) else 0
        located = location_type <= 2  # stops, stations, entrances need a name and a position
        yield (_unique(rows, line, "stop_id", stop_id(row), ids.stops),
               _required(rows, line, "stop_name", name(row)) if located else name(row) or None,
               _coordinate(rows, line, "stop_lat", lat(row), 90) if located or lat(row) else None,
               _coordinate(rows, line, "stop_lon", lon(row), 180) if located or lon(row) else None,
               location_type, parent(row) or None)


def _route_rows(rows: FileRows, ids: _Ids) -> Iterator[tuple]:
    if rows.index("route_short_name") is None and rows.index("route_long_name") is None:
        raise GtfsFeedError("is missing both route_short_name and route_long_name", file=rows.name)
    route_id, agency, short, long_, kind = (_getter(rows, c) for c in (
        "route_id", "agency_id", "route_short_name", "route_long_name", "route_type"))
    for line, row in rows:
        if not (short(row) or long_(row)):
            raise rows.fail(line, "route_short_name", "", "route_short_name and route_long_name are both empty")
        if agency(row) and ids.agencies:
            _exists(rows, line, "agency_id", agency(row), ids.agencies, "agency.txt")
        yield (_unique(rows, line, "route_id", route_id(row), ids.routes), agency(row) or None,
               short(row) or None, long_(row) or None, _int(rows, line, "route_type", kind(row)))


def _calendar_rows(rows: FileRows, ids: _Ids) -> Iterator[tuple]:
    service_id, start, end = (_getter(rows, c) for c in ("service_id", "start_date", "end_date"))
    day_columns = [(day, _getter(rows, day)) for day in WEEKDAYS]
    seen: dict[str, int] = {}
    for line, row in rows:
        service = _unique(rows, line, "service_id", service_id(row), seen)
        first, last = _date(rows, line, "start_date", start(row)), _date(rows, line, "end_date", end(row))
        if last < first:
            raise rows.fail(line, "end_date", end(row), f"end_date '{end(row)}' is before start_date '{start(row)}'")
        ids.services.add(service)
        yield (service, *(_int(rows, line, day, get(row), allowed=(0, 1)) for day, get in day_columns), first, last)


def _calendar_date_rows(rows: FileRows, ids: _Ids) -> Iterator[tuple]:
    service_id, day, kind = (_getter(rows, c) for c in ("service_id", "date", "exception_type"))
    for line, row in rows:
        service = _required(rows, line, "service_id", service_id(row))
        ids.services.add(service)
        yield (service, _date(rows, line, "date", day(row)),
               _int(rows, line, "exception_type", kind(row), allowed=(1, 2)))


def _trip_rows(rows: FileRows, ids: _Ids) -> Iterator[tuple]:
    trip_id, route_id, service_id, headsign, direction = (_getter(rows, c) for c in (
        "trip_id", "route_id", "service_id", "trip_headsign", "direction_id"))
    for line, row in rows:
        yield (_unique(rows, line, "trip_id", trip_id(row), ids.trips),
               _exists(rows, line, "route_id", route_id(row), ids.routes, "routes.txt"),
               _exists(rows, line, "service_id", service_id(row), ids.services, "calendar.txt or calendar_dates.txt"),
               headsign(row) or None,
               _int(rows, line, "direction_id", direction(row), allowed=(0, 1)) if direction(row) else None)


def _stop_time_rows(rows: FileRows, ids: _Ids) -> Iterator[tuple]:
    # The hot loop (a million rows): positional reads, cheap checks inline, and each distinct
    # time string parsed once per load (a timetable repeats the same few thousand times).
    i_trip, i_stop, i_seq, i_arr, i_dep = (rows.index(c) for c in (
        "trip_id", "stop_id", "stop_sequence", "arrival_time", "departure_time"))
    trips, stops = ids.trips, ids.stops
    seconds: dict[str, int | None] = {"": None}  # empty: allowed between timepoints, no departure
    # Files are grouped by trip in practice: a repeated stop_sequence within the current run of
    # a trip is reported with its line; one split across runs is caught by the unique index.
    current_trip, sequences = None, set()
    for line, row in rows:
        trip, stop, sequence, arrival_text, departure_text = (
            row[i_trip], row[i_stop], row[i_seq], row[i_arr], row[i_dep])
        if trip != current_trip:
            if trip not in trips:
                _exists(rows, line, "trip_id", trip, trips, "trips.txt")
            current_trip, sequences = trip, set()
        if stop not in stops:
            _exists(rows, line, "stop_id", stop, stops, "stops.txt")
        arrival = seconds[arrival_text] if arrival_text in seconds else seconds.setdefault(
            arrival_text, _time(rows, line, "arrival_time", arrival_text))
        departure = seconds[departure_text] if departure_text in seconds else seconds.setdefault(
            departure_text, _time(rows, line, "departure_time", departure_text))
        if arrival is not None and departure is not None and departure < arrival:
            raise rows.fail(line, "departure_time", departure_text,
                            f"departure_time '{departure_text}' is before arrival_time '{arrival_text}'")
        number = int(sequence) if sequence.isdecimal() else _int(rows, line, "stop_sequence", sequence)
        if number in sequences:
            raise rows.fail(line, "stop_sequence", sequence,
                            f"stop_sequence {number} appears twice for trip_id '{trip}'")
        sequences.add(number)
        yield trip, number, stop, arrival, departure

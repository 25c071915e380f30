"""A synthetic GTFS static feed, small for the tests or a million stop_times for the benchmark.

The feed is described by a few plain structures (services, route patterns, trips) from which
both the CSV files and the expected departures are computed, so the tests check the pipeline
against a second, independent reading of the same timetable, not against its own output.
Zips are byte-for-byte reproducible (fixed member timestamps), like a real feed re-served.
"""
from __future__ import annotations

import io
import itertools
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

WEEK_START = date(2024, 3, 4)  # a Monday
NOW = datetime(2024, 3, 3, 17, 0, tzinfo=timezone.utc)  # the tests' clock: 04:00 Monday in Sydney
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # fixed member timestamps: the same feed gives the same bytes
STOP_TIMES_HEADER = ["trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence"]


@dataclass(frozen=True)
class Service:
    """A calendar.txt row (``weekdays`` Monday first), or calendar_dates.txt only when None."""

    service_id: str
    weekdays: tuple[int, ...] | None
    start: date
    end: date


@dataclass(frozen=True)
class Pattern:
    """A route's stops with the minutes from the trip's start, and minutes of dwell at each."""

    route_id: str
    stop_ids: tuple[str, ...]
    offsets_min: tuple[int, ...]
    dwell_min: tuple[int, ...] = ()


@dataclass(frozen=True)
class Trip:
    trip_id: str
    route_id: str
    service_id: str
    headsign: str
    start_s: int  # seconds from noon minus 12 h of the service date; may pass 24 h


@dataclass
class SyntheticFeed:
    stops: list[tuple[str, str, float, float]]
    routes: list[tuple[str, str, str, int]]
    patterns: dict[str, Pattern]
    services: list[Service]
    exceptions: list[tuple[str, date, int]]  # (service_id, date, 1 added / 2 removed)
    trips: list[Trip]
    agency_zone: str = "Australia/Sydney"

    # -- the timetable, read independently of the pipeline ---------------------------------
    def stop_events(self, trip: Trip) -> Iterator[tuple[int, str, int, int]]:
        """(stop_sequence, stop_id, arrival_s, departure_s) of a trip."""
        pattern = self.patterns[trip.route_id]
        for i, (stop_id, offset) in enumerate(zip(pattern.stop_ids, pattern.offsets_min)):
            arrival = trip.start_s + offset * 60
            dwell = pattern.dwell_min[i] if pattern.dwell_min else 0
            yield i + 1, stop_id, arrival, arrival + dwell * 60

    def runs_on(self, service_id: str, day: date) -> bool:
        for sid, when, kind in self.exceptions:
            if sid == service_id and when == day:
                return kind == 1
        service = next((s for s in self.services if s.service_id == service_id), None)
        return (service is not None and service.weekdays is not None and service.start <= day <= service.end
                and bool(service.weekdays[day.weekday()]))

    def date_range(self) -> tuple[date, date]:
        days = [d for s in self.services for d in (s.start, s.end)] + [d for _, d, _ in self.exceptions]
        return min(days), max(days)

    def expected_departures(self, first: date, last: date) -> list[tuple]:
        """(service_date, stop_id, departure_s, trip_id, route_id, headsign), sorted."""
        rows = []
        day = first
        while day <= last:
            for trip in self.trips:
                if self.runs_on(trip.service_id, day):
                    rows.extend((day, stop_id, departure, trip.trip_id, trip.route_id, trip.headsign)
                                for _, stop_id, _, departure in self.stop_events(trip))
            day += timedelta(days=1)
        return sorted(rows)

    # -- the files -----------------------------------------------------------------------
    def files(self) -> dict[str, list[list[str]]]:
        """Every file as rows of strings, header first (row i is line i + 1): edit, then zip."""
        files = self._files_except_stop_times()
        files["stop_times.txt"] = [STOP_TIMES_HEADER, *self._stop_time_rows()]
        return files

    def zip_bytes(self) -> bytes:
        return zip_files(self.files())

    def write_zip(self, path: Path) -> Path:
        """Stream the feed into ``path``, stop_times generated row by row (for large feeds)."""
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, rows in sorted(self._files_except_stop_times().items()):
                _write_member(archive, name, iter(rows))
            _write_member(archive, "stop_times.txt", itertools.chain([STOP_TIMES_HEADER], self._stop_time_rows()))
        return path

    def _stop_time_rows(self) -> Iterator[list[str]]:
        for trip in self.trips:
            for seq, stop_id, arrival, departure in self.stop_events(trip):
                yield [trip.trip_id, gtfs_time(arrival), gtfs_time(departure), stop_id, str(seq)]

    def _files_except_stop_times(self) -> dict[str, list[list[str]]]:
        return {
            "agency.txt": [["agency_id", "agency_name", "agency_url", "agency_timezone"],
                           ["A1", "Harbour Transit", "https://transit.example", self.agency_zone]],
            "stops.txt": [["stop_id", "stop_name", "stop_lat", "stop_lon"]]
            + [[sid, name, f"{lat:.6f}", f"{lon:.6f}"] for sid, name, lat, lon in self.stops],
            "routes.txt": [["route_id", "agency_id", "route_short_name", "route_long_name", "route_type"]]
            + [[rid, "A1", short, long_, str(kind)] for rid, short, long_, kind in self.routes],
            "calendar.txt": [["service_id", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                              "sunday", "start_date", "end_date"]]
            + [[s.service_id, *map(str, s.weekdays), _d(s.start), _d(s.end)] for s in self.services if s.weekdays],
            "calendar_dates.txt": [["service_id", "date", "exception_type"]]
            + [[sid, _d(day), str(kind)] for sid, day, kind in self.exceptions],
            "trips.txt": [["route_id", "service_id", "trip_id", "trip_headsign"]]
            + [[t.route_id, t.service_id, t.trip_id, t.headsign] for t in self.trips],
        }


def _write_member(archive: zipfile.ZipFile, name: str, rows: Iterator[list[str]]) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as member, io.TextIOWrapper(member, encoding="utf-8",
                                                                              newline="") as text:
        for row in rows:
            text.write(",".join(_csv_field(v) for v in row) + "\r\n")


def _csv_field(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\r\n') else value


def zip_files(files: dict[str, list[list[str]]]) -> bytes:
    """A GTFS zip of ``files`` (name -> rows, header first), reproducible byte for byte."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            _write_member(archive, name, iter(files[name]))
    return buffer.getvalue()


def gtfs_time(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _d(day: date) -> str:
    return day.strftime("%Y%m%d")


def small_feed(*, version: int = 1) -> SyntheticFeed:
    """A week from Monday 2024-03-04: weekday and weekend services, a holiday on Wednesday
    (weekday service removed, weekend service added), an event service on Friday defined only
    in calendar_dates, a trip past midnight, a loop trip, a dwell, a stop name with a comma and
    quotes. ``version=2`` adds a trip."""
    monday = WEEK_START
    wednesday, friday = monday + timedelta(days=2), monday + timedelta(days=4)
    stops = [(f"S{i}", name, -33.86 - i / 100, 151.20 + i / 100) for i, name in enumerate(
        ["Central", "Town Hall", "Wynyard", "Circular Quay", 'Kings Cross, "The Cross"', "Bondi Junction"], start=1)]
    patterns = {
        "R1": Pattern("R1", ("S1", "S2", "S3", "S4"), (0, 10, 20, 40), (0, 2, 0, 0)),
        "R2": Pattern("R2", ("S4", "S5", "S6"), (0, 15, 30)),
        "R3": Pattern("R3", ("S1", "S5", "S6", "S1"), (0, 12, 25, 50)),  # a loop: S1 twice
    }
    trips = [
        Trip("T1", "R1", "WEEKDAY", "Circular Quay", 7 * 3600),
        Trip("T2", "R1", "WEEKDAY", "Circular Quay", 8 * 3600 + 30 * 60),
        Trip("T3", "R1", "WEEKDAY", "Circular Quay", 23 * 3600 + 40 * 60),  # runs until 24:20
        Trip("T4", "R2", "WEEKEND", "Bondi Junction", 9 * 3600),
        Trip("T5", "R2", "WEEKEND", "Bondi Junction", 25 * 3600 + 10 * 60),  # 01:10 the next morning
        Trip("T6", "R3", "EVENT", "Central (loop)", 19 * 3600),
    ]
    if version >= 2:
        trips.append(Trip("T7", "R2", "WEEKDAY", "Bondi Junction", 17 * 3600 + 5 * 60))
    return SyntheticFeed(
        stops=stops,
        routes=[("R1", "T1", "North Shore Line", 2), ("R2", "333", "Eastern Suburbs", 3),
                ("R3", "", "Harbour Event Loop", 3)],
        patterns=patterns,
        services=[Service("WEEKDAY", (1, 1, 1, 1, 1, 0, 0), monday, monday + timedelta(days=6)),
                  Service("WEEKEND", (0, 0, 0, 0, 0, 1, 1), monday, monday + timedelta(days=6)),
                  Service("EVENT", None, friday, friday)],
        exceptions=[("WEEKDAY", wednesday, 2), ("WEEKEND", wednesday, 1), ("EVENT", friday, 1)],
        trips=trips,
    )


def large_feed(*, stop_times_rows: int = 1_000_000, stops_per_trip: int = 25, routes: int = 200) -> SyntheticFeed:
    """About ``stop_times_rows`` stop_times over a week: 60 % weekday trips, 20 % each weekend day."""
    monday = WEEK_START
    stop_count = routes * 10
    stops = [(f"STOP{i:05d}", f"Stop {i}", -33.5 - (i % 97) / 100, 150.8 + (i % 89) / 100)
             for i in range(stop_count)]
    patterns = {}
    for r in range(routes):
        stop_ids = tuple(f"STOP{(r * 7 + k * 13) % stop_count:05d}" for k in range(stops_per_trip))
        patterns[f"ROUTE{r:04d}"] = Pattern(f"ROUTE{r:04d}", stop_ids, tuple(range(0, 2 * stops_per_trip, 2)))
    trips_per_route = max(1, stop_times_rows // (stops_per_trip * routes))
    services = ["WEEKDAY"] * 3 + ["SATURDAY", "SUNDAY"]
    trips = [Trip(f"TRIP{r:04d}-{t:04d}", f"ROUTE{r:04d}", services[t % 5], f"Terminus {r}",
                  5 * 3600 + (t * 19 * 60 * 60 // trips_per_route))
             for r in range(routes) for t in range(trips_per_route)]
    week = monday + timedelta(days=6)
    return SyntheticFeed(
        stops=stops, routes=[(f"ROUTE{r:04d}", str(r), f"Route {r}", 3) for r in range(routes)],
        patterns=patterns,
        services=[Service("WEEKDAY", (1, 1, 1, 1, 1, 0, 0), monday, week),
                  Service("SATURDAY", (0, 0, 0, 0, 0, 1, 0), monday, week),
                  Service("SUNDAY", (0, 0, 0, 0, 0, 0, 1), monday, week)],
        exceptions=[("WEEKDAY", monday + timedelta(days=2), 2), ("SUNDAY", monday + timedelta(days=2), 1)],
        trips=trips,
    )

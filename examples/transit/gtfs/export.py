"""Step 3 of the GTFS pipeline, export: the compact SQLite file the iOS app downloads.

The file holds ``stops``, ``routes`` (with their summaries), ``trips`` and ``departures`` keyed
by small integers, plus a ``meta`` table and ``PRAGMA user_version`` = :data:`EXPORT_SCHEMA_VERSION`.
Departures are a WITHOUT ROWID table whose primary key is the app's lookup, "departures at
this stop on this date from this time": ``(stop_key, service_date, departure_s, ...)``.
``service_date`` is an integer ``YYYYMMDD``; ``departure_s`` counts seconds from noon minus
12 h of the service date, as GTFS times do, and may exceed 86400 (``25:10:00`` is 90600: a
01:10 departure the next morning, still on the previous day's service).

The file is built under a temporary name in the target directory and renamed into place,
so a reader never sees half a file. It is deterministic: the same loaded feed and horizon
give a byte-identical file (rows inserted in a total order, no timestamps inside), so a
resumed pipeline produces exactly what a clean run would.
"""
from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

from examples.transit.gtfs import schema
from examples.transit.gtfs.errors import GtfsStateError
from examples.transit.gtfs.refresh import derived_exist, ordered_derived_queries

EXPORT_SCHEMA_VERSION = 1  # bump when the app must change how it reads the file
_FETCH_ROWS = 50_000  # source rows per fetch, and target rows per executemany

_EXPORT_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE stops (stop_key INTEGER PRIMARY KEY, stop_id TEXT NOT NULL UNIQUE, name TEXT,
                    lat REAL, lon REAL);
CREATE TABLE routes (route_key INTEGER PRIMARY KEY, route_id TEXT NOT NULL UNIQUE, short_name TEXT,
                     long_name TEXT, route_type INTEGER NOT NULL, trip_count INTEGER NOT NULL,
                     stop_count INTEGER NOT NULL, first_departure_s INTEGER, last_departure_s INTEGER);
CREATE TABLE trips (trip_key INTEGER PRIMARY KEY, trip_id TEXT NOT NULL UNIQUE,
                    route_key INTEGER NOT NULL REFERENCES routes, headsign TEXT);
CREATE TABLE departures (stop_key INTEGER NOT NULL REFERENCES stops, service_date INTEGER NOT NULL,
                         departure_s INTEGER NOT NULL, trip_key INTEGER NOT NULL REFERENCES trips,
                         stop_sequence INTEGER NOT NULL,
                         PRIMARY KEY (stop_key, service_date, departure_s, trip_key, stop_sequence)
                        ) WITHOUT ROWID;
"""
_EXPORT_INDEXES = "CREATE INDEX ix_trips_route_key ON trips (route_key);"


@dataclass(frozen=True)
class ExportResult:
    """``checksum`` is the sha256 of the file at ``path``; ``status`` is always ``"exported"``
    (the file is rewritten every time; identical input gives identical bytes)."""

    status: str
    path: str
    checksum: str
    size_bytes: int
    schema_version: int
    feed_sha256: str
    row_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def export_app_database(*, database: str | sa.Engine, output_path: str | Path) -> ExportResult:
    """Write the app's SQLite file to ``output_path`` (atomically) from the refreshed data.

    Raises :class:`GtfsStateError` when no feed is loaded or the derived data was built from
    another feed than the loaded one (refresh has not run since the last sync).
    """
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = output_path.with_name(f".{output_path.name}.tmp-{os.getpid()}")
    try:
        with schema.engine_for(database) as engine, schema.read_snapshot(engine) as source:
            schema.tune_for_bulk_work(source)
            meta = _current_meta(source)
            counts = _build(source, tmp_path, meta)
        checksum, size = _fsync_and_hash(tmp_path)
        os.replace(tmp_path, output_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)  # the previous export, if any, stays as it was
        raise
    _fsync_dir(output_path.parent)
    return ExportResult(status="exported", path=str(output_path), checksum=checksum, size_bytes=size,
                        schema_version=EXPORT_SCHEMA_VERSION, feed_sha256=meta["feed_sha256"], row_counts=counts)


def _build(source: sa.Connection, path: Path, meta: dict[str, str]) -> dict[str, int]:
    path.unlink(missing_ok=True)
    target = sqlite3.connect(path, isolation_level=None)
    try:
        # A scratch file until renamed: no journal, no syncs (one fsync at the end).
        for pragma in ("page_size = 4096", "journal_mode = OFF", "synchronous = OFF", "auto_vacuum = NONE",
                       f"user_version = {EXPORT_SCHEMA_VERSION}"):
            target.execute(f"PRAGMA {pragma}")
        target.execute("BEGIN")
        for statement in _EXPORT_DDL.split(";"):
            if statement.strip():
                target.execute(statement)
        counts = _copy_rows(source, target)
        meta.update({f"{name}_rows": str(n) for name, n in counts.items()})
        target.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", sorted(meta.items()))
        target.execute(_EXPORT_INDEXES)
        target.execute("COMMIT")
    finally:
        target.close()
    return counts


def _current_meta(source: sa.Connection) -> dict[str, str]:
    sync = None
    if schema.table_exists(source, schema.sync_state.name):
        sync = source.execute(sa.select(schema.sync_state)).mappings().first()
    if sync is None or not sync["feed_sha256"] or not schema.table_exists(source, "gtfs_stop_times"):
        raise GtfsStateError("no GTFS feed is loaded in this database", hint="run the sync step first")
    refresh = source.execute(sa.select(schema.refresh_state)).mappings().first()
    if refresh is None or refresh["feed_sha256"] != sync["feed_sha256"] or not derived_exist(source):
        raise GtfsStateError(f"the derived data was not built from the loaded feed {sync['feed_sha256'][:12]}",
                             hint="run the refresh step first")
    agency = schema.feed_tables["gtfs_agency"]
    zone = source.execute(sa.select(agency.c.agency_timezone)
                          .order_by(schema.sort_key(source, agency.c.agency_timezone))).scalar()
    first, last = refresh["first_service_date"], refresh["last_service_date"]
    return {"schema_version": str(EXPORT_SCHEMA_VERSION), "feed_sha256": sync["feed_sha256"],
            "derived_checksum": refresh["checksum"], "agency_timezone": zone or "",
            "first_service_date": first.isoformat() if first else "",
            "last_service_date": last.isoformat() if last else "",
            "departure_time_unit": "seconds from noon minus 12 h of the service date (GTFS); may exceed 86400"}


def _copy_rows(source: sa.Connection, target: sqlite3.Connection) -> dict[str, int]:
    """Copy in one total order (code points), assigning integer keys in that same order, so the
    target's B-trees are built identically every time."""
    stops, routes = schema.feed_tables["gtfs_stops"], schema.feed_tables["gtfs_routes"]
    trips, summaries = schema.feed_tables["gtfs_trips"], schema.route_summaries

    def batches(query: sa.Select):
        return schema.stream_batches(source, query, batch_rows=_FETCH_ROWS)

    key = functools.partial(schema.sort_key, source)
    stop_keys: dict[str, int] = {}
    for rows in batches(sa.select(stops.c.stop_id, stops.c.stop_name, stops.c.stop_lat, stops.c.stop_lon)
                        .order_by(key(stops.c.stop_id))):
        target.executemany("INSERT INTO stops VALUES (?, ?, ?, ?, ?)",
                           [(stop_keys.setdefault(r[0], len(stop_keys) + 1), *r) for r in rows])
    route_keys: dict[str, int] = {}
    for rows in batches(sa.select(routes.c.route_id, routes.c.route_short_name, routes.c.route_long_name,
                                  routes.c.route_type, summaries.c.trip_count, summaries.c.stop_count,
                                  summaries.c.first_departure_s, summaries.c.last_departure_s)
                        .join_from(routes, summaries, summaries.c.route_id == routes.c.route_id)
                        .order_by(key(routes.c.route_id))):
        target.executemany("INSERT INTO routes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(route_keys.setdefault(r[0], len(route_keys) + 1), *r) for r in rows])
    trip_keys: dict[str, int] = {}
    for rows in batches(sa.select(trips.c.trip_id, trips.c.route_id, trips.c.trip_headsign)
                        .order_by(key(trips.c.trip_id))):
        target.executemany("INSERT INTO trips VALUES (?, ?, ?, ?)",
                           [(trip_keys.setdefault(r[0], len(trip_keys) + 1), r[0], route_keys[r[1]], r[2])
                            for r in rows])
    count = 0
    for rows in batches(ordered_derived_queries(source)["gtfs_departures"]):
        target.executemany("INSERT INTO departures VALUES (?, ?, ?, ?, ?)",
                           [(stop_keys[stop], day, departure, trip_keys[trip], sequence)
                            for stop, day, departure, trip, sequence in rows])
        count += len(rows)
    return {"stops": len(stop_keys), "routes": len(route_keys), "trips": len(trip_keys), "departures": count}


def _fsync_and_hash(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
        size = handle.tell()
    return digest.hexdigest(), size


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

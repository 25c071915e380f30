"""The SQL tables of the GTFS reference pipeline, for SQLite and Postgres alike.

Three kinds of table:

* **feed tables** (``gtfs_stops`` ...): one feed's rows, replaced as a whole by each sync.
  A sync loads ``staging_gtfs_*`` tables and swaps them in by drop + rename in one
  transaction. Staging tables carry no constraints, so they never clash with the live
  tables' index names; the live indexes are built after the rename, in the same transaction.
* **derived tables** (``gtfs_departures``, ``gtfs_route_summaries``): rebuilt by refresh;
  plain tables on SQLite, materialized views of the same name and columns on Postgres.
* **state tables** (``gtfs_sync_state`` ...): what the steps remember between runs.

GTFS times are stored as seconds from noon minus 12 h of the service date, as GTFS counts
them (``25:10:00`` -> 90600): they may exceed a day. Dates are SQL dates.

Also here: the few SQL helpers the steps share (one real transaction, a read snapshot,
streaming reads, an ordering that is the same on every database).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa

from monitoring.db import write_transaction

metadata = sa.MetaData()  # feed + state tables (ensure_state_tables creates only the latter)
derived_metadata = sa.MetaData()  # SQLite's derived tables (Postgres builds views instead)

STAGING_PREFIX = "staging_"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _feed_columns() -> dict[str, list[sa.Column]]:
    """Fresh Column objects per call: a Column belongs to exactly one Table."""
    text, integer = sa.Text, sa.Integer
    return {
        "gtfs_agency": [sa.Column("agency_id", text), sa.Column("agency_name", text, nullable=False),
                        sa.Column("agency_url", text, nullable=False),
                        sa.Column("agency_timezone", text, nullable=False)],
        "gtfs_stops": [sa.Column("stop_id", text, nullable=False), sa.Column("stop_name", text),
                       sa.Column("stop_lat", sa.Float), sa.Column("stop_lon", sa.Float),
                       sa.Column("location_type", sa.SmallInteger, nullable=False),
                       sa.Column("parent_station", text)],
        "gtfs_routes": [sa.Column("route_id", text, nullable=False), sa.Column("agency_id", text),
                        sa.Column("route_short_name", text), sa.Column("route_long_name", text),
                        sa.Column("route_type", integer, nullable=False)],
        "gtfs_calendar": [sa.Column("service_id", text, nullable=False),
                          *[sa.Column(day, sa.SmallInteger, nullable=False) for day in WEEKDAYS],
                          sa.Column("start_date", sa.Date, nullable=False),
                          sa.Column("end_date", sa.Date, nullable=False)],
        "gtfs_calendar_dates": [sa.Column("service_id", text, nullable=False),
                                sa.Column("date", sa.Date, nullable=False),
                                sa.Column("exception_type", sa.SmallInteger, nullable=False)],
        "gtfs_trips": [sa.Column("trip_id", text, nullable=False), sa.Column("route_id", text, nullable=False),
                       sa.Column("service_id", text, nullable=False), sa.Column("trip_headsign", text),
                       sa.Column("direction_id", sa.SmallInteger)],
        "gtfs_stop_times": [sa.Column("trip_id", text, nullable=False),
                            sa.Column("stop_sequence", integer, nullable=False),
                            sa.Column("stop_id", text, nullable=False),
                            sa.Column("arrival_s", integer), sa.Column("departure_s", integer)],
    }

#: The feed tables in load order: a table's references are loaded before it.
FEED_TABLE_NAMES = ("gtfs_agency", "gtfs_stops", "gtfs_routes", "gtfs_calendar", "gtfs_calendar_dates",
                    "gtfs_trips", "gtfs_stop_times")

feed_tables: dict[str, sa.Table] = {name: sa.Table(name, metadata, *cols)
                                    for name, cols in _feed_columns().items()}

# Built just after each swap, in its transaction: a unique index that fails rejects the load.
for _name, _table, _cols in [
    ("ux_gtfs_stops_stop_id", "gtfs_stops", ("stop_id",)),
    ("ux_gtfs_routes_route_id", "gtfs_routes", ("route_id",)),
    ("ux_gtfs_calendar_service_id", "gtfs_calendar", ("service_id",)),
    ("ux_gtfs_calendar_dates_service_date", "gtfs_calendar_dates", ("service_id", "date")),
    ("ux_gtfs_trips_trip_id", "gtfs_trips", ("trip_id",)),
    ("ux_gtfs_stop_times_trip_sequence", "gtfs_stop_times", ("trip_id", "stop_sequence")),
]:
    sa.Index(_name, *(feed_tables[_table].c[c] for c in _cols), unique=True)


def staging_table(name: str) -> sa.Table:
    """The staging twin of feed table ``name``: same columns, no indexes, its own metadata."""
    return sa.Table(STAGING_PREFIX + name, sa.MetaData(), *_feed_columns()[name])


sync_state = sa.Table(
    "gtfs_sync_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1: one static feed per database
    sa.Column("feed_url", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("feed_sha256", sa.Text),
    sa.Column("load_count", sa.Integer, nullable=False, default=0),  # loads that swapped data in
    sa.Column("check_count", sa.Integer, nullable=False, default=0),  # every sync, loaded or not
    sa.Column("row_counts", sa.JSON),
    sa.Column("loaded_at", sa.DateTime(timezone=True)),
    sa.Column("checked_at", sa.DateTime(timezone=True)),
)

refresh_state = sa.Table(
    "gtfs_refresh_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1
    sa.Column("feed_sha256", sa.Text, nullable=False),  # the feed the derived data was built from
    sa.Column("first_service_date", sa.Date),
    sa.Column("last_service_date", sa.Date),
    sa.Column("checksum", sa.Text, nullable=False),
    sa.Column("row_counts", sa.JSON),
    sa.Column("refreshed_at", sa.DateTime(timezone=True)),
)

#: The (service_id, date) pairs inside the refresh horizon: calendar + calendar_dates expanded.
service_dates = sa.Table(
    "gtfs_service_dates", metadata,
    sa.Column("service_id", sa.Text, nullable=False),
    sa.Column("service_date", sa.Date, nullable=False),
    sa.PrimaryKeyConstraint("service_id", "service_date", name="pk_gtfs_service_dates"),
)

departures = sa.Table(
    "gtfs_departures", derived_metadata,
    sa.Column("service_date", sa.Date, nullable=False),
    sa.Column("stop_id", sa.Text, nullable=False),
    sa.Column("departure_s", sa.Integer, nullable=False),
    sa.Column("trip_id", sa.Text, nullable=False),
    sa.Column("stop_sequence", sa.Integer, nullable=False),  # a loop trip visits a stop twice
    sa.Column("route_id", sa.Text, nullable=False),
    sa.Column("headsign", sa.Text),
    # The lookup "departures at a stop on a date from a time", and the export's ordered read.
    sa.Index("ux_gtfs_departures_stop_date", "stop_id", "service_date", "departure_s", "trip_id", "stop_sequence",
             unique=True),
)

route_summaries = sa.Table(
    "gtfs_route_summaries", derived_metadata,
    sa.Column("route_id", sa.Text, nullable=False),
    sa.Column("trip_count", sa.Integer, nullable=False),
    sa.Column("stop_count", sa.Integer, nullable=False),
    sa.Column("first_departure_s", sa.Integer),  # None for a route without timed stops
    sa.Column("last_departure_s", sa.Integer),
    sa.Index("ux_gtfs_route_summaries_route_id", "route_id", unique=True),
)


@contextmanager
def engine_for(database: str | sa.Engine) -> Iterator[sa.Engine]:
    """The caller's engine as it is, or an engine for an SQLAlchemy URL, disposed at the end."""
    if isinstance(database, sa.Engine):
        yield database
        return
    engine = sa.create_engine(database)
    try:
        yield engine
    finally:
        engine.dispose()


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def tune_for_bulk_work(conn: sa.Connection) -> None:
    """SQLite: a 64 MiB page cache for this connection (the default 2 MiB makes index builds,
    sorts and long ordered reads spill and re-read pages). Nothing to do elsewhere."""
    if is_sqlite(conn.engine):
        conn.exec_driver_sql("PRAGMA cache_size = -65536")  # negative: KiB


def ensure_state_tables(engine: sa.Engine) -> None:
    """Create the state tables if missing (feed tables are only ever created by a swap)."""
    metadata.create_all(engine, tables=[sync_state, refresh_state, service_dates], checkfirst=True)


def transaction(engine: sa.Engine):
    """One real database transaction, DDL included (see ``monitoring.db.write_transaction``)."""
    return write_transaction(engine)


@contextmanager
def read_snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection whose every query sees the same committed state (one read transaction)."""
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn.exec_driver_sql("BEGIN")  # deferred: a shared lock from the first read to the end
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


def stream_batches(conn: sa.Connection, query: sa.Select, *, batch_rows: int) -> Iterator[list[tuple]]:
    """The rows of ``query`` as lists of plain tuples, straight from the driver.

    Skipping Core's row objects and type processing matters when millions of rows are read
    (dates then come back as ISO text on SQLite); Postgres reads through a server-side cursor.
    """
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    dbapi = conn.connection.dbapi_connection
    cursor = dbapi.cursor() if is_sqlite(conn.engine) else dbapi.cursor(name="gtfs_stream")
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(batch_rows):
            yield rows
    finally:
        cursor.close()


def sort_key(conn: sa.Connection, column: sa.ColumnElement) -> sa.ColumnElement:
    """``column`` for ORDER BY in code-point order, the same on every database (Postgres would
    otherwise sort text by its locale, and checksums and exports would differ between them)."""
    if not is_sqlite(conn.engine) and isinstance(column.type, sa.Text):
        return column.collate("C")
    return column


def yyyymmdd(conn: sa.Connection, column: sa.ColumnElement) -> sa.ColumnElement:
    """A date column as the integer YYYYMMDD, computed by the database."""
    if is_sqlite(conn.engine):  # Core keeps SQLite dates as 'YYYY-MM-DD'; replace() beats strftime()
        return sa.cast(sa.func.replace(column, "-", ""), sa.Integer)
    return sa.cast(sa.func.to_char(column, "YYYYMMDD"), sa.Integer)


def table_exists(conn: sa.Connection, name: str) -> bool:
    return sa.inspect(conn).has_table(name)

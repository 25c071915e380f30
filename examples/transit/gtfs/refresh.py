"""Step 2 of the GTFS pipeline, refresh: rebuild the derived data from the loaded feed.

* ``gtfs_service_dates``: calendar.txt + calendar_dates.txt expanded to the (service_id, date)
  pairs that run inside the horizon (the feed's whole date range unless told otherwise).
* ``gtfs_departures``: one row per (service date, stop, trip visit) with its departure time,
  route and headsign. A stop time without any time (between timepoints) has no departure.
* ``gtfs_route_summaries``: per route, its trips, distinct stops, first and last departure.

Postgres keeps the last two as materialized views (created on the first refresh after a
sync, ``REFRESH MATERIALIZED VIEW`` afterwards); SQLite as tables dropped and rebuilt. Either
way, all in one transaction with the refresh state, which records the feed the derived data
was built from: export refuses derived data of another feed (the "refresh ran on stale data"
failure, caught by data rather than by a timer).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from examples.transit.gtfs import schema
from examples.transit.gtfs.errors import GtfsStateError

_CHECKSUM_FETCH_ROWS = 50_000  # rows per fetch while hashing the derived data


@dataclass(frozen=True)
class RefreshResult:
    """``status`` is ``"refreshed"`` or ``"unchanged"`` (already built from this feed and horizon);
    ``checksum`` is the sha256 of the derived rows in a fixed order."""

    status: str
    checksum: str
    feed_sha256: str
    first_service_date: date | None
    last_service_date: date | None
    row_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("first_service_date", "last_service_date"):
            data[key] = data[key] and data[key].isoformat()
        return data


def expand_service_dates(calendar: list[dict], calendar_dates: list[dict], *, first: date, last: date
                         ) -> set[tuple[str, date]]:
    """The (service_id, date) pairs running between ``first`` and ``last`` inclusive: calendar
    weekdays within each service's start..end, plus exception_type 1, minus exception_type 2."""
    running: set[tuple[str, date]] = set()
    for row in calendar:
        day = max(row["start_date"], first)
        while day <= min(row["end_date"], last):
            if row[schema.WEEKDAYS[day.weekday()]]:
                running.add((row["service_id"], day))
            day += timedelta(days=1)
    for row in calendar_dates:
        if first <= row["date"] <= last:
            pair = (row["service_id"], row["date"])
            if row["exception_type"] == 1:
                running.add(pair)
            else:
                running.discard(pair)
    return running


def refresh_derived_tables(*, database: str | sa.Engine, first_service_date: date | None = None,
                           horizon_days: int | None = None, now: datetime | None = None,
                           force: bool = False) -> RefreshResult:
    """Rebuild departures and route summaries from the loaded feed.

    The horizon starts at ``first_service_date`` (default: the feed's first date) and spans
    ``horizon_days`` days (default: to the feed's last date). Raises :class:`GtfsStateError`
    when no feed has been loaded.
    """
    if horizon_days is not None and horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    with schema.engine_for(database) as engine:
        return _refresh(engine, first_service_date=first_service_date, horizon_days=horizon_days,
                        now=now or datetime.now(timezone.utc), force=force)


def _refresh(engine: sa.Engine, *, first_service_date: date | None, horizon_days: int | None, now: datetime,
             force: bool) -> RefreshResult:
    schema.ensure_state_tables(engine)
    with schema.transaction(engine) as conn:
        schema.tune_for_bulk_work(conn)
        feed_sha256 = _loaded_feed(conn)
        calendar = [dict(r) for r in conn.execute(sa.select(schema.feed_tables["gtfs_calendar"])).mappings()]
        exceptions = [dict(r) for r in conn.execute(sa.select(schema.feed_tables["gtfs_calendar_dates"])).mappings()]
        first, last = _horizon(calendar, exceptions, first_service_date, horizon_days)
        previous = conn.execute(sa.select(schema.refresh_state)).mappings().first()
        if (not force and previous is not None and previous["feed_sha256"] == feed_sha256
                and (previous["first_service_date"], previous["last_service_date"]) == (first, last)
                and derived_exist(conn)):
            return RefreshResult(status="unchanged", checksum=previous["checksum"], feed_sha256=feed_sha256,
                                 first_service_date=first, last_service_date=last,
                                 row_counts=previous["row_counts"] or {})
        conn.execute(schema.service_dates.delete())
        pairs = sorted(expand_service_dates(calendar, exceptions, first=first, last=last)) if first else []
        if pairs:
            conn.execute(schema.service_dates.insert(), [{"service_id": s, "service_date": d} for s, d in pairs])
        if schema.is_sqlite(engine):
            _rebuild_tables(conn)
        else:
            _refresh_views(conn)
        checksum, counts = derived_checksum(conn)
        state = dict(feed_sha256=feed_sha256, first_service_date=first, last_service_date=last,
                     checksum=checksum, row_counts=counts, refreshed_at=now)
        conn.execute(schema.refresh_state.delete())
        conn.execute(schema.refresh_state.insert().values(id=1, **state))
    return RefreshResult(status="refreshed", checksum=checksum, feed_sha256=feed_sha256, first_service_date=first,
                         last_service_date=last, row_counts=counts)


def _loaded_feed(conn: sa.Connection) -> str:
    state = conn.execute(sa.select(schema.sync_state.c.feed_sha256)).scalar()
    if not state or not schema.table_exists(conn, "gtfs_stop_times"):
        raise GtfsStateError("no GTFS feed is loaded in this database", hint="run the sync step first")
    return state


def _horizon(calendar: list[dict], exceptions: list[dict], first: date | None, horizon_days: int | None
             ) -> tuple[date | None, date | None]:
    days = [r["start_date"] for r in calendar] + [r["end_date"] for r in calendar] + [r["date"] for r in exceptions]
    if not days and first is None:
        return None, None  # a feed without dates runs on no day
    first = first or min(days)
    if horizon_days:
        return first, first + timedelta(days=horizon_days - 1)
    return first, max(days) if days else first


def _departures_query() -> sa.Select:
    stop_times, trips = schema.feed_tables["gtfs_stop_times"], schema.feed_tables["gtfs_trips"]
    dates = schema.service_dates
    departure_s = sa.func.coalesce(stop_times.c.departure_s, stop_times.c.arrival_s)
    return (sa.select(dates.c.service_date, stop_times.c.stop_id, departure_s.label("departure_s"),
                      stop_times.c.trip_id, stop_times.c.stop_sequence, trips.c.route_id,
                      trips.c.trip_headsign.label("headsign"))
            .select_from(stop_times.join(trips, trips.c.trip_id == stop_times.c.trip_id)
                         .join(dates, dates.c.service_id == trips.c.service_id))
            .where(departure_s.is_not(None)))


def _route_summaries_query() -> sa.Select:
    routes, trips = schema.feed_tables["gtfs_routes"], schema.feed_tables["gtfs_trips"]
    stop_times = schema.feed_tables["gtfs_stop_times"]
    departure_s = sa.func.coalesce(stop_times.c.departure_s, stop_times.c.arrival_s)
    return (sa.select(routes.c.route_id,
                      sa.func.count(sa.distinct(trips.c.trip_id)).label("trip_count"),
                      sa.func.count(sa.distinct(stop_times.c.stop_id)).label("stop_count"),
                      sa.func.min(departure_s).label("first_departure_s"),
                      sa.func.max(departure_s).label("last_departure_s"))
            .select_from(routes.outerjoin(trips, trips.c.route_id == routes.c.route_id)
                         .outerjoin(stop_times, stop_times.c.trip_id == trips.c.trip_id))
            .group_by(routes.c.route_id))


_DERIVED = ((schema.departures, _departures_query), (schema.route_summaries, _route_summaries_query))


def _rebuild_tables(conn: sa.Connection) -> None:
    for table, query in _DERIVED:
        table.drop(conn, checkfirst=True)
        conn.execute(sa.schema.CreateTable(table))
        columns = [c.name for c in table.columns]
        conn.execute(table.insert().from_select(columns, query()))
        for index in table.indexes:  # after the rows: one sort instead of a million inserts
            index.create(conn)


def _refresh_views(conn: sa.Connection) -> None:
    quote = conn.dialect.identifier_preparer.quote
    for table, query in _DERIVED:
        if _view_exists(conn, table.name):
            conn.exec_driver_sql(f"REFRESH MATERIALIZED VIEW {quote(table.name)}")
            continue
        sql = query().compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        conn.exec_driver_sql(f"CREATE MATERIALIZED VIEW {quote(table.name)} AS {sql}")
        for index in table.indexes:
            index.create(conn)


def _view_exists(conn: sa.Connection, name: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM pg_matviews WHERE matviewname = :name "
                                "AND schemaname = current_schema()"), {"name": name}).first() is not None


def derived_exist(conn: sa.Connection) -> bool:
    """Whether both derived relations exist (tables on SQLite, materialized views on Postgres)."""
    if schema.is_sqlite(conn.engine):
        return all(schema.table_exists(conn, t.name) for t, _ in _DERIVED)
    return all(_view_exists(conn, t.name) for t, _ in _DERIVED)


def derived_checksum(conn: sa.Connection) -> tuple[str, dict[str, int]]:
    """sha256 of the derived rows in code-point order, and the row count of each relation.

    Departures are hashed on their key (stop, date, time, trip, stop_sequence): route and
    headsign are copies from trips, which the feed checksum already covers. The rows hash the
    same on SQLite and Postgres.
    """
    digest = hashlib.sha256()
    counts = {}
    for name, query in ordered_derived_queries(conn).items():
        digest.update(f"{name}\n".encode())
        count = 0
        for rows in schema.stream_batches(conn, query, batch_rows=_CHECKSUM_FETCH_ROWS):
            digest.update(repr(rows).encode())  # drivers return lists of tuples
            count += len(rows)
        counts[name] = count
    return digest.hexdigest(), counts


def ordered_derived_queries(conn: sa.Connection) -> dict[str, sa.Select]:
    """The derived rows in one total order; on SQLite the departures' read is a covering index scan."""
    departures, summaries, key = schema.departures, schema.route_summaries, schema.sort_key
    return {
        "gtfs_departures": sa.select(departures.c.stop_id, schema.yyyymmdd(conn, departures.c.service_date),
                                     departures.c.departure_s, departures.c.trip_id, departures.c.stop_sequence)
        .order_by(key(conn, departures.c.stop_id), departures.c.service_date, departures.c.departure_s,
                  key(conn, departures.c.trip_id), departures.c.stop_sequence),
        "gtfs_route_summaries": sa.select(*summaries.columns).order_by(key(conn, summaries.c.route_id)),
    }

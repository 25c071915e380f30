"""Step 1 of the GTFS pipeline, sync: download the static feed and swap it into SQL atomically.

:func:`sync_static_feed` is idempotent. An unchanged feed (a 304 to the conditional GET, or a
body whose sha256 equals the loaded one) does no loading work: only ``check_count`` moves.
A changed feed is streamed, checked row by row and bulk-inserted into ``staging_gtfs_*``
tables, then swapped in by drop + rename, all in ONE transaction together with the new
sync state, so readers see the old feed or the new one, never a mix. Any problem (a bad
feed, a lost connection) rolls the whole transaction back: the previous data stays as it was.

On Postgres the swap drops the old tables with CASCADE, which drops the derived materialized
views built on them (they describe the old feed); the refresh step, chained right after
sync, recreates them. On SQLite the derived tables stay, stale, until refresh rebuilds them.
"""
from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import sqlalchemy as sa

from examples.transit.gtfs import schema
from examples.transit.gtfs.errors import GtfsDownloadError, GtfsFeedError
from examples.transit.gtfs.feed import DEFAULT_TIMEOUT_S, download_feed
from examples.transit.gtfs.validate import FeedArchive, feed_rows

DEFAULT_BATCH_ROWS = 10_000  # rows per executemany: big enough to amortise, small in memory


@dataclass(frozen=True)
class SyncResult:
    """``status`` is ``"loaded"`` or ``"unchanged"``; ``checksum`` is the sha256 of the feed zip
    whose rows are now in the database (the same value whether this run loaded it or not)."""

    status: str
    checksum: str
    feed_url: str
    load_count: int
    etag: str | None = None
    last_modified: str | None = None
    row_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def sync_static_feed(*, feed_url: str, database: str | sa.Engine, timeout_s: float = DEFAULT_TIMEOUT_S,
                     batch_rows: int = DEFAULT_BATCH_ROWS, work_dir: Path | None = None,
                     now: datetime | None = None, force: bool = False) -> SyncResult:
    """Bring the database's feed up to date with ``feed_url``; ``force`` reloads an unchanged feed.

    Raises :class:`~examples.transit.gtfs.errors.GtfsDownloadError` (worth a retry) or
    :class:`~examples.transit.gtfs.errors.GtfsFeedError` (the feed itself is bad), leaving data intact.
    """
    with schema.engine_for(database) as engine:
        return _sync(engine, feed_url=feed_url, timeout_s=timeout_s, batch_rows=batch_rows, work_dir=work_dir,
                     now=now or datetime.now(timezone.utc), force=force)


def _sync(engine: sa.Engine, *, feed_url: str, timeout_s: float, batch_rows: int, work_dir: Path | None,
          now: datetime, force: bool) -> SyncResult:
    schema.ensure_state_tables(engine)
    with engine.connect() as conn:
        state = conn.execute(sa.select(schema.sync_state).where(schema.sync_state.c.id == 1)).mappings().first()
        loaded = state is not None and state["feed_sha256"] and schema.table_exists(conn, "gtfs_stop_times")
    # Validators of another URL (or of data since lost) must not turn a download into a 304.
    current = dict(state) if loaded and state["feed_url"] == feed_url and not force else None
    with tempfile.TemporaryDirectory(prefix="gtfs-sync-", dir=work_dir) as tmp:
        download = download_feed(feed_url, dest_path=Path(tmp) / "feed.zip", timeout_s=timeout_s,
                                 etag=current and current["etag"], last_modified=current and current["last_modified"])
        if current is not None and (download.not_modified or download.sha256 == current["feed_sha256"]):
            _record_check(engine, etag=download.etag, last_modified=download.last_modified, now=now)
            return SyncResult(status="unchanged", checksum=current["feed_sha256"], feed_url=feed_url,
                              load_count=current["load_count"], etag=download.etag,
                              last_modified=download.last_modified, row_counts=current["row_counts"] or {})
        if download.not_modified:  # a 304 to a GET without validators: the server is confused
            raise GtfsDownloadError(feed_url, "304 Not Modified to an unconditional GET", status=304)
        archive = FeedArchive(download.path)
        try:
            with schema.transaction(engine) as conn:
                row_counts = load_into_staging(conn, archive, batch_rows=batch_rows)
                swap_staging_in(conn)
                load_count = _record_load(conn, feed_url=feed_url, sha256=download.sha256, etag=download.etag,
                                          last_modified=download.last_modified, row_counts=row_counts, now=now)
        finally:
            archive.close()
    return SyncResult(status="loaded", checksum=download.sha256, feed_url=feed_url, load_count=load_count,
                      etag=download.etag, last_modified=download.last_modified, row_counts=row_counts)


def load_into_staging(conn: sa.Connection, archive: FeedArchive, *, batch_rows: int = DEFAULT_BATCH_ROWS
                      ) -> dict[str, int]:
    """Stream every feed file into a fresh ``staging_gtfs_*`` table; returns rows per table."""
    schema.tune_for_bulk_work(conn)
    counts: dict[str, int] = {}
    for name, rows in feed_rows(archive):
        staging = schema.staging_table(name)
        staging.drop(conn, checkfirst=True)  # a leftover of a crashed run outside a transaction
        staging.create(conn)
        counts[name] = 0
        for batch in _batches(rows, batch_rows):
            bulk_insert(conn, staging, batch)
            counts[name] += len(batch)
    return counts


def bulk_insert(conn: sa.Connection, table: sa.Table, rows: list[tuple]) -> None:
    """Insert tuples in column order by the fastest path the driver has: SQLite's executemany,
    psycopg2's COPY, else Core's batched multi-row INSERTs. (Core's per-row parameter
    processing alone would cost more than SQLite spends storing the row.)"""
    names = [c.name for c in table.columns]
    driver = conn.dialect.driver
    if driver not in ("pysqlite", "psycopg2"):
        conn.execute(table.insert(), [dict(zip(names, row)) for row in rows])
        return
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        if driver == "pysqlite":
            if any(isinstance(c.type, sa.Date) for c in table.columns):  # ISO text, as Core stores it
                rows = [tuple(v.isoformat() if isinstance(v, date) else v for v in row) for row in rows]
            placeholders = ", ".join("?" * len(names))
            cursor.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({placeholders})", rows)
        else:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(rows)  # None -> empty field -> NULL
            buffer.seek(0)
            cursor.copy_expert(f"COPY {table.name} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()


def swap_staging_in(conn: sa.Connection) -> None:
    """Replace each live feed table by its staging twin and build the live indexes."""
    quote = conn.dialect.identifier_preparer.quote
    cascade = "" if schema.is_sqlite(conn.engine) else " CASCADE"  # Postgres: derived views go too
    for name in schema.FEED_TABLE_NAMES:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)}{cascade}")
        conn.exec_driver_sql(f"ALTER TABLE {quote(schema.STAGING_PREFIX + name)} RENAME TO {quote(name)}")
    for table_name in schema.FEED_TABLE_NAMES:
        for index in sorted(schema.feed_tables[table_name].indexes, key=lambda ix: ix.name):
            try:
                index.create(conn)
            except sa.exc.IntegrityError:
                file = table_name.removeprefix("gtfs_") + ".txt"
                columns = ", ".join(c.name for c in index.columns)
                raise GtfsFeedError(f"has duplicate ({columns}) values", file=file) from None


def _batches(rows: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _record_load(conn: sa.Connection, *, feed_url: str, sha256: str, etag: str | None,
                 last_modified: str | None, row_counts: dict[str, int], now: datetime) -> int:
    state = schema.sync_state
    previous = conn.execute(sa.select(state.c.load_count, state.c.check_count).where(state.c.id == 1)).first()
    values = dict(feed_url=feed_url, feed_sha256=sha256, etag=etag, last_modified=last_modified,
                  row_counts=row_counts, loaded_at=now, checked_at=now)
    if previous is None:
        conn.execute(state.insert().values(id=1, load_count=1, check_count=1, **values))
        return 1
    conn.execute(state.update().where(state.c.id == 1).values(
        load_count=previous.load_count + 1, check_count=previous.check_count + 1, **values))
    return previous.load_count + 1


def _record_check(engine: sa.Engine, *, etag: str | None, last_modified: str | None, now: datetime) -> None:
    with schema.transaction(engine) as conn:
        conn.execute(schema.sync_state.update().where(schema.sync_state.c.id == 1).values(
            check_count=schema.sync_state.c.check_count + 1, checked_at=now, etag=etag,
            last_modified=last_modified))

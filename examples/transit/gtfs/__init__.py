"""The GTFS static reference pipeline: sync -> refresh -> export -> publish, as plain functions.

Each step takes explicit arguments (a feed URL, an SQLAlchemy URL or engine, paths, a publish
target), is idempotent, and returns a small result whose ``checksum`` identifies its output
and whose ``as_dict()`` is JSON-ready for the task layer that chains the steps::

    synced = sync_static_feed(feed_url=url, database=db)                  # "loaded" | "unchanged"
    refreshed = refresh_derived_tables(database=db)                       # "refreshed" | "unchanged"
    exported = export_app_database(database=db, output_path=path)         # byte-identical per input
    published = publish_export(export_path=path, target=publish_url)      # "published" | "unchanged"

Errors carry their data (:mod:`examples.transit.gtfs.errors`); a failed step leaves the previous data,
export and published version in place.
"""
from examples.transit.gtfs.errors import GtfsDownloadError, GtfsError, GtfsFeedError, GtfsPublishError, GtfsStateError
from examples.transit.gtfs.export import EXPORT_SCHEMA_VERSION, ExportResult, export_app_database
from examples.transit.gtfs.load import SyncResult, sync_static_feed
from examples.transit.gtfs.publish import MANIFEST_NAME, PublishResult, publish_export
from examples.transit.gtfs.refresh import RefreshResult, refresh_derived_tables

__all__ = [
    "EXPORT_SCHEMA_VERSION", "MANIFEST_NAME",
    "ExportResult", "PublishResult", "RefreshResult", "SyncResult",
    "GtfsDownloadError", "GtfsError", "GtfsFeedError", "GtfsPublishError", "GtfsStateError",
    "export_app_database", "publish_export", "refresh_derived_tables", "sync_static_feed",
]

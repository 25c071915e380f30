"""The GTFS static reference pipeline as Celery tasks: sync -> refresh -> export -> publish.

One schedule entry (``gtfs-static-pipeline``, daily 03:00 Australia/Sydney, see
``schedules.platform``) sends the start task ``beatkeeper.gtfs.start``; by hand::

    beatkeeper pipeline start gtfs-static      # or: celery -A tasks call beatkeeper.gtfs.start

The start task reads its settings from the worker's environment, records them as the run's
parameters (a resumed run keeps them) and sends the four steps as one chain. Each step wraps
a plain function of ``examples.transit.gtfs``: refresh runs when sync has *finished*, not at a time
sync usually has. Copy this module for a pipeline of your own.

| variable          | default                           | meaning                                        |
|-------------------|-----------------------------------|------------------------------------------------|
| GTFS_STATIC_URL   | (required; so is the entry)       | the feed zip: http(s)://, file:// or a path    |
| GTFS_DATABASE_URL | sqlite:///<data dir>/gtfs/gtfs.db | SQLite, or ``postgresql+psycopg2://``          |
| GTFS_PUBLISH_URL  | <data dir>/gtfs/published         | a directory (path, file://) or an http(s):// PUT base URL |

The export is written to ``<data dir>/gtfs/export/gtfs.sqlite`` before it is published.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Collection

from celery import Signature
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.exc import OperationalError as DatabaseUnavailable

from monitoring.db import data_dir
from schedules.errors import SettingsError
from tasks.application import app
from examples.transit.gtfs import (GtfsDownloadError, GtfsPublishError, export_app_database, publish_export,
                        refresh_derived_tables, sync_static_feed)
from schedules.entry import RetrySpec
from tasks.pipelines.definition import Pipeline, Step, build, register
from tasks.pipelines.steps import run_step, start_pipeline, step_policy

PIPELINE_NAME = "gtfs-static"
START_TASK = "beatkeeper.gtfs.start"
_RETRY = RetrySpec(max_retries=5, backoff_s=30.0, backoff_max_s=600.0)

# A lost connection to the database is transient for every step; a bad feed (GtfsFeedError)
# or steps run out of order (GtfsStateError) are not: retrying cannot fix them.
SYNC = Step("sync", task="beatkeeper.gtfs.sync", params=("feed_url", "database_url"),
            retry_on=(GtfsDownloadError, DatabaseUnavailable), retry=_RETRY, max_runtime_s=1800.0)
REFRESH = Step("refresh", task="beatkeeper.gtfs.refresh", params=("database_url",),
               retry_on=(DatabaseUnavailable,), retry=_RETRY, max_runtime_s=1800.0)
EXPORT = Step("export", task="beatkeeper.gtfs.export", params=("database_url", "export_path"),
              retry_on=(OSError, DatabaseUnavailable), retry=_RETRY, max_runtime_s=1200.0)
PUBLISH = Step("publish", task="beatkeeper.gtfs.publish", params=("export_path", "publish_target"),
               retry_on=(GtfsPublishError,), retry=_RETRY, max_runtime_s=600.0)

GTFS_STATIC_PIPELINE = register(Pipeline(name=PIPELINE_NAME, start_task=START_TASK,
                                         steps=(SYNC, REFRESH, EXPORT, PUBLISH)))


class GtfsSettingError(SettingsError):
    """A GTFS setting in the environment that cannot be used."""


@dataclass(frozen=True)
class GtfsSettings:
    """The run parameters of the GTFS pipeline."""

    feed_url: str
    database_url: str
    export_path: str
    publish_target: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GtfsSettings:
        feed_url = (environ.get("GTFS_STATIC_URL") or "").strip()
        if not feed_url:
            raise GtfsSettingError("GTFS_STATIC_URL", "", "must name the GTFS static feed zip")
        base = data_dir(environ).resolve() / "gtfs"
        database = (environ.get("GTFS_DATABASE_URL") or "").strip() or f"sqlite:///{base / 'gtfs.db'}"
        return cls(feed_url=feed_url, database_url=_checked_database_url(database),
                   export_path=str(base / "export" / "gtfs.sqlite"),
                   publish_target=(environ.get("GTFS_PUBLISH_URL") or "").strip() or str(base / "published"))

    def as_params(self) -> dict[str, str]:
        return asdict(self)


def _checked_database_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise GtfsSettingError("GTFS_DATABASE_URL", url, "is not an SQLAlchemy URL") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg2":
        # The load streams rows with psycopg2's COPY; a bare postgresql:// means psycopg 3 to SQLAlchemy.
        raise GtfsSettingError("GTFS_DATABASE_URL", shown, "Postgres URLs must start with postgresql+psycopg2://")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise GtfsSettingError("GTFS_DATABASE_URL", shown, "must be a sqlite:/// or postgresql+psycopg2:// URL")
    return url


def build_gtfs_pipeline(*, run_id: str, settings: GtfsSettings, done: Collection[str] = ()) -> Signature:
    """The GTFS chain for run ``run_id``, from the first step not in ``done``; nothing is sent."""
    return build(GTFS_STATIC_PIPELINE, run_id=run_id, params=settings.as_params(), done=done, app=app)


@app.task(name=START_TASK, bind=True, overlap="skip", lock_key=[])
def start(self) -> dict[str, Any]:
    """Start a GTFS pipeline run, unless one is running and not stalled (then: skipped as overlap)."""
    settings = GtfsSettings.from_env(os.environ)
    return start_pipeline(self, GTFS_STATIC_PIPELINE, params=settings.as_params()).as_dict()


@app.task(name=SYNC.task, bind=True, **step_policy(SYNC.max_runtime_s))
def sync(self, *, pipeline_run_id: str, feed_url: str, database_url: str) -> dict[str, Any]:
    """Download the feed if it changed (conditional GET) and swap it into the database."""
    return run_step(self, pipeline_run_id=pipeline_run_id,
                    body=lambda: sync_static_feed(feed_url=feed_url, database=database_url))


@app.task(name=REFRESH.task, bind=True, **step_policy(REFRESH.max_runtime_s))
def refresh(self, *, pipeline_run_id: str, database_url: str) -> dict[str, Any]:
    """Rebuild departures and route summaries from the feed sync just loaded."""
    return run_step(self, pipeline_run_id=pipeline_run_id, body=lambda: refresh_derived_tables(database=database_url))


@app.task(name=EXPORT.task, bind=True, **step_policy(EXPORT.max_runtime_s))
def export(self, *, pipeline_run_id: str, database_url: str, export_path: str) -> dict[str, Any]:
    """Write the app's SQLite file (atomically; identical input gives identical bytes)."""
    return run_step(self, pipeline_run_id=pipeline_run_id,
                    body=lambda: export_app_database(database=database_url, output_path=export_path))


@app.task(name=PUBLISH.task, bind=True, **step_policy(PUBLISH.max_runtime_s))
def publish(self, *, pipeline_run_id: str, export_path: str, publish_target: str) -> dict[str, Any]:
    """Publish the export unless the live manifest already names it (then nothing is written)."""
    return run_step(self, pipeline_run_id=pipeline_run_id,
                    body=lambda: publish_export(export_path=export_path, target=publish_target))

"""Fixtures of the pipeline tests: a migrated history + pipeline database on the app, the GTFS
pipeline's environment pointed at local servers, and fast retries."""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from monitoring.db import engine_for
from monitoring.pipelines import PipelineStore
from tests.examples.transit.gtfs.conftest import put_receiver  # noqa: F401  (the same local PUT receiver fixture)
from tests.examples.transit.gtfs.feedgen import small_feed
from tests.examples.transit.gtfs.servers import FeedServer
from tests.monitoring.databases import app_history, sqlite_url  # noqa: F401  (fixtures)


@pytest.fixture
def pipeline_store(app, sqlite_url, app_history) -> PipelineStore:  # noqa: F811
    """The app's pipeline store on the same fresh, migrated SQLite database as its history."""
    from tests.app_wiring import set_pipeline_store

    store = PipelineStore(engine_for(sqlite_url))
    set_pipeline_store(app, store)
    yield store
    set_pipeline_store(app, None)


@pytest.fixture
def feed():
    return small_feed()


class GatedFeedServer(FeedServer):
    """A feed server whose GETs wait until :meth:`open` (at most 20 s): a sync held mid-step."""

    def __init__(self, body: bytes):
        super().__init__(body)
        self.gate = threading.Event()
        self.waiting = threading.Event()
        base = self.httpd.RequestHandlerClass
        server = self

        class Gated(base):
            def do_GET(self):
                server.waiting.set()
                server.gate.wait(timeout=20)
                super().do_GET()

        self.httpd.RequestHandlerClass = Gated

    def open(self) -> None:
        self.gate.set()


@pytest.fixture
def feed_server(feed):
    server = GatedFeedServer(feed.zip_bytes())
    server.open()
    server.start()
    yield server
    server.stop()


@dataclasses.dataclass
class GtfsPlace:
    """Where the GTFS pipeline of a test reads and writes."""

    data_dir: Path
    database_url: str
    export_dir: Path  # the export step writes its file in here

    def obstruct_export(self) -> None:
        """A file where the export directory belongs: every export attempt fails (FileExistsError)."""
        self.export_dir.parent.mkdir(parents=True, exist_ok=True)
        self.export_dir.write_text("not a directory")

    def clear_export(self) -> None:
        self.export_dir.unlink()


@pytest.fixture
def gtfs_env(monkeypatch, tmp_path, feed_server, put_receiver) -> GtfsPlace:
    """The worker's environment for the GTFS pipeline: the transit example selected (its tasks
    registered), the local feed, a fresh SQLite, the PUT store."""
    monkeypatch.setenv("BEATKEEPER_EXAMPLE", "transit")
    data_dir = tmp_path / "data"
    database_url = f"sqlite:///{tmp_path / 'gtfs.db'}"
    for name, value in {"GTFS_STATIC_URL": feed_server.url, "GTFS_DATABASE_URL": database_url,
                        "GTFS_PUBLISH_URL": put_receiver.base_url, "BEATKEEPER_DATA_DIR": str(data_dir)}.items():
        monkeypatch.setenv(name, value)
    return GtfsPlace(data_dir=data_dir, database_url=database_url, export_dir=data_dir.resolve() / "gtfs" / "export")


@pytest.fixture
def retry_policy():
    """``retry_policy(policy)`` gives every GTFS step ``policy``; the real one is back afterwards."""
    from examples.transit.gtfs_tasks import GTFS_STATIC_PIPELINE
    from tasks.pipelines.definition import register

    def use(policy):
        register(dataclasses.replace(GTFS_STATIC_PIPELINE, steps=tuple(
            dataclasses.replace(step, retry=policy) for step in GTFS_STATIC_PIPELINE.steps)))
        return policy

    yield use
    register(GTFS_STATIC_PIPELINE)


@pytest.fixture
def fast_retries(retry_policy):
    """Two retries, 25-100 ms apart: a step that keeps failing fails its run within a second."""
    from schedules.entry import RetrySpec

    return retry_policy(RetrySpec(max_retries=2, backoff_s=0.05, backoff_max_s=0.1))

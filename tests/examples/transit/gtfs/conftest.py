"""Fixtures of the GTFS pipeline tests: local feed and publish servers, databases, the small feed."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from examples.transit.gtfs import schema
from tests.examples.transit.gtfs.feedgen import SyntheticFeed, small_feed
from tests.examples.transit.gtfs.servers import FeedServer, PutReceiver



@pytest.fixture
def feed() -> SyntheticFeed:
    return small_feed()


@pytest.fixture
def feed_server(feed):
    server = FeedServer(feed.zip_bytes()).start()
    yield server
    server.stop()


@pytest.fixture
def put_receiver():
    receiver = PutReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'gtfs.db'}"


@pytest.fixture
def postgres_url(request) -> str:
    """A new database on the session's Postgres (skipped only when Postgres cannot start)."""
    from tests.postgres import fresh_database_url

    return fresh_database_url(request)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    """Each test using it runs once on SQLite and once on Postgres."""
    return request.getfixturevalue(f"{request.param}_url")


class DatabaseReader:
    """Reads a GTFS database the way a test compares it: whole tables as sorted tuples."""

    def rows(self, url: str, table: str) -> list[tuple]:
        relation = schema.metadata.tables.get(table)
        if relation is None:
            relation = schema.derived_metadata.tables[table]
        return sorted(tuple(r) for r in self._query(url, sa.select(relation)))

    def table_identity(self, url: str, table: str):
        """What changes when a table is replaced: its root page (SQLite) or its oid (Postgres)."""
        sql = ("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = :name" if url.startswith("sqlite")
               else "SELECT CAST(:name AS regclass)::oid")
        return self._query(url, sa.text(sql).bindparams(name=table))[0][0]

    def table_names(self, url: str) -> set[str]:
        engine = sa.create_engine(url)
        try:
            return set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()

    def sync_state(self, url: str) -> dict:
        return dict(self._query(url, sa.select(schema.sync_state), mappings=True)[0])

    def _query(self, url: str, statement, *, mappings: bool = False) -> list:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                result = conn.execute(statement)
                return list(result.mappings() if mappings else result)
        finally:
            engine.dispose()


@pytest.fixture
def db() -> DatabaseReader:
    return DatabaseReader()

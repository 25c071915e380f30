"""The spool's one database (``monitoring.history_home``): recorded by the first drainer, a stranger refused."""
from __future__ import annotations

import json

from sqlalchemy import create_engine

from monitoring.db import engine_for
from monitoring.history import HistoryStore
from monitoring.history_home import HistoryHome, database_id, home_key, safe_url
from tests.monitoring.databases import TEST_SPOOL_KEY, sqlite_url, upgraded  # noqa: F401  (fixtures)
from tests.monitoring.test_history import a_record


def test_the_first_drainer_records_its_database_and_a_stranger_is_refused_saying_how_to_fix_it(
        sqlite_url, redis_client, tmp_path):  # noqa: F811
    ours, stranger = engine_for(sqlite_url), engine_for(upgraded(f"sqlite:///{tmp_path / 'b' / 'history.db'}"))
    assert database_id(ours) != database_id(stranger)  # same kind of URL, two databases
    assert HistoryHome(TEST_SPOOL_KEY).refusal(ours, redis_client) is None
    recorded = json.loads(redis_client.get(home_key(TEST_SPOOL_KEY)))
    assert recorded["database_id"] == database_id(ours) and recorded["url"] == safe_url(ours)
    assert HistoryHome(TEST_SPOOL_KEY).refusal(ours, redis_client) is None  # another process, same database

    store = HistoryStore(stranger, redis_client=redis_client, spool_key=TEST_SPOOL_KEY)
    store.record(a_record(0))
    result = store.drain()
    assert (result.written, result.pending, result.error) == (0, 1, None)
    assert result.refused.startswith(f"DATABASE_URL ({safe_url(stranger)}, database {database_id(stranger)}) is "
                                     f"not this deployment's history database ({safe_url(ours)}, database "
                                     f"{database_id(ours)}, recorded by ")
    assert result.refused.endswith(f"delete the Redis key {TEST_SPOOL_KEY}:database")
    assert store.count() == 0
    # the history moved: the key deleted, the next drainer records its own database
    redis_client.delete(home_key(TEST_SPOOL_KEY))
    assert store.drain().written == 1 and store.home_refusal() is None


def test_the_recorded_url_never_holds_the_password():
    engine = create_engine("postgresql+psycopg2://beatkeeper:s3cret@db:5432/history")
    assert safe_url(engine) == "postgresql+psycopg2://beatkeeper:***@db:5432/history"

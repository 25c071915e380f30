"""History databases for the tests: a fresh SQLite file, or a fresh database on the real
Postgres of ``tests/postgres.py``, each migrated to head. Import the fixtures you use."""
from __future__ import annotations

import pytest

from monitoring.db import engine_for
from monitoring.history import HistoryStore
from monitoring.migrations import upgrade_database

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
def postgres_url(request) -> str:
    """A new, migrated database on the session's Postgres (skipped only when Postgres cannot start)."""
    from tests.postgres import fresh_database_url

    url = fresh_database_url(request)
    upgrade_database(url)
    return url


@pytest.fixture(params=BACKENDS)
def history_url(request) -> str:
    """Each test using it runs once on SQLite and once on Postgres."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def history_store(history_url, redis_client) -> HistoryStore:
    return HistoryStore(engine_for(history_url), redis_client=redis_client, batch_size=50)


@pytest.fixture
def app_history(app, sqlite_url):
    """The app's standard middlewares recording into a fresh, migrated SQLite history."""
    yield from _app_history(app, sqlite_url)


@pytest.fixture
def app_history_on(app, history_url):
    """Like ``app_history``, once on SQLite and once on Postgres."""
    yield from _app_history(app, history_url)


def _app_history(app, url):
    from tasks.guard import standard_middlewares
    from tasks.history_mw import history_store_for, set_history_store
    from tasks.middleware import set_middlewares
    from tasks.redis_client import app_redis

    previous = history_store_for(app)
    store = HistoryStore(engine_for(url), redis_client=app_redis(app))
    set_history_store(app, store)
    set_middlewares(app, standard_middlewares(app))
    yield store
    set_history_store(app, previous)
    set_middlewares(app, standard_middlewares(app))


def drained_records(store: HistoryStore, *, expected: int, timeout_s: float = 30, **filters):
    """The stored records once ``expected`` of them (matching ``filters``) are in SQL."""
    from tests.servers import wait_until

    def enough():
        store.drain()
        records = store.query(limit=expected + 100, **filters)
        return records if len(records) >= expected else None

    return wait_until(enough, timeout_s=timeout_s, interval_s=0.1, what=f"{expected} history rows")

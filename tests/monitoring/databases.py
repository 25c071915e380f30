"""History databases for the tests: a fresh SQLite file, or a fresh database on the real
Postgres of ``tests/postgres.py``, each migrated to head. Import the fixtures you use
(and ``postgres_url``, ``postgres_db_url`` with ``history_url``)."""
from __future__ import annotations

import contextlib
import uuid

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from monitoring.db import engine_for
from monitoring.history import HistoryStore
from monitoring.history_home import home_key
from monitoring.migrations import upgrade_database
from tests.postgres import postgres_url  # noqa: F401  (the session's server, a pytest fixture)

BACKENDS = ["sqlite", "postgres"]
TEST_SPOOL_KEY = "test:history:spool"
FIXTURE_OF = {"sqlite": "sqlite_url", "postgres": "postgres_db_url"}


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return upgraded(f"sqlite:///{tmp_path / 'history.db'}")


@pytest.fixture
def postgres_db_url(postgres_url) -> str:
    """A new, migrated database on the session's Postgres (skips, or fails in CI, when Postgres is not installed)."""
    return upgraded(fresh_postgres_database(postgres_url))


def fresh_postgres_database(server_url: str) -> str:
    """The URL of a new, empty database on the server at ``server_url``."""
    name = f"history_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def upgraded(url: str) -> str:
    upgrade_database(url)
    return url


@pytest.fixture(params=BACKENDS)
def history_url(request) -> str:
    """Each test using it runs once on SQLite and once on Postgres."""
    return request.getfixturevalue(FIXTURE_OF[request.param])


@pytest.fixture
def history_store(history_url, redis_client) -> HistoryStore:
    # Its own spool: a worker test's drainer thread, still alive in this process, drains the standard one.
    return HistoryStore(engine_for(history_url), redis_client=redis_client, batch_size=50,
                        spool_key=TEST_SPOOL_KEY)


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
    from tests.app_wiring import history_store_for, set_history_store
    from tests.app_wiring import set_middlewares
    from tasks.infra.redis_client import app_redis

    previous = history_store_for(app)
    store = HistoryStore(engine_for(url), redis_client=app_redis(app))
    # The test's database is the deployment's history now: the spool's recorded one is forgotten
    # (``monitoring.history_home``), as an operator moving the history would.
    _forget_home(app_redis(app), store)
    set_history_store(app, store)
    set_middlewares(app, standard_middlewares(app))
    yield store
    _forget_home(app_redis(app), store)
    set_history_store(app, previous)
    set_middlewares(app, standard_middlewares(app))


def _forget_home(client, store: HistoryStore) -> None:
    with contextlib.suppress(redis.RedisError):  # a test's Redis may be down: then there is nothing to forget
        client.delete(home_key(store.spool_key))


def drained_records(store: HistoryStore, *, expected: int, timeout_s: float = 30, **filters):
    """The stored records once ``expected`` of them (matching ``filters``) are in SQL."""
    from tests.servers import wait_until

    def enough():
        store.drain()
        records = store.query(limit=expected + 100, **filters)
        return records if len(records) >= expected else None

    return wait_until(enough, timeout_s=timeout_s, interval_s=0.1, what=f"{expected} history rows")

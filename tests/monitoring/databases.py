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
